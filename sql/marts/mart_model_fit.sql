-- mart_model_fit  (published as model_fit)
-- Grain: one row per fit, model and parameter, per snapshot.
-- Inputs: int_model_fits (pipelines/predictive.py).
-- fit = snapshot: the models behind customer_clv's predictions; fit = calibration: BG/NBD
-- fitted on the backtest's calibration window (see model_backtest).

with fits as (

    select * from int_model_fits

)

select
    fit,
    model,
    param,
    value,
    log_likelihood,
    customers_used,
    customers_excluded,
    converged,
    iterations,
    seconds

from fits
order by fit desc, model, param
