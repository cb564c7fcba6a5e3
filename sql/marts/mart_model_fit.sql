-- mart_model_fit  (published as model_fit)
-- Grain: one row per fit, model and parameter, per snapshot.
-- Inputs: int_model_fits (Python model: pipelines/predictive/predictive.py).
-- fit = snapshot: the models behind customer_clv's predictions; fit = calibration: BG/NBD
-- fitted on the backtest's calibration window (see model_backtest). status says whether a fit
-- is ok, at a boundary (fitted in its limit form), failed (predictions null, run degraded) or
-- carried forward from an earlier snapshot (fitted_on).

with fits as (

    select * from int_model_fits

),

final as (

    select
        fits.fit,
        fits.model,
        fits.param,
        fits.value,
        fits.log_likelihood,
        fits.customers_used,
        fits.customers_excluded,
        fits.converged,
        fits.iterations,
        fits.seconds,
        fits.status,
        fits.note,
        fits.fitted_on

    from fits

)

select * from final
order by final.fit desc, final.model, final.param
