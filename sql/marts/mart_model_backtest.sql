-- mart_model_backtest  (published as model_backtest)
-- Grain: one row per scope, per snapshot: 'overall', then one per calibration frequency
-- bucket ('frequency=0' ... 'frequency=6', 'frequency=7+') -- the usual
-- calibration-vs-holdout view.
-- Inputs: int_backtest_predictions (pipelines/predictive.py); $backtest_calibration_date,
--         $backtest_holdout_days.
-- BG/NBD is fitted on the purchase days up to the calibration date and predicts each
-- customer's repeat purchase days in the holdout (the last holdout days up to the snapshot).
-- Sums are taken over DECIMAL values (exact, so independent of thread scheduling); the
-- correlation is Pearson's, from those sums.

with predictions as (

    select
        customer_id,
        frequency,
        predicted_purchases::decimal(18, 9) as predicted,
        actual_purchases::decimal(18, 9) as actual

    from int_backtest_predictions
    where predicted_purchases is not null

),

scoped as (

    select 'overall' as scope, -1 as scope_order, * from predictions
    union all
    select
        case when frequency >= 7 then 'frequency=7+' else 'frequency=' || frequency::varchar end,
        least(frequency, 7),
        *
    from predictions

),

sums as (

    select
        scope,
        any_value(scope_order) as scope_order,
        count(*) as n,
        sum(predicted) as sp,
        sum(actual) as sa,
        sum(abs(predicted - actual)) as sae,
        sum((predicted - actual) * (predicted - actual)) as sse,
        sum(predicted * actual) as spa,
        sum(predicted * predicted) as spp,
        sum(actual * actual) as saa

    from scoped
    group by scope

),

final as (

    select
        scope,
        $backtest_calibration_date::date as calibration_end,
        $backtest_holdout_days::integer as holdout_days,
        n as customers,
        sp::double as predicted_purchases,
        sa::bigint as actual_purchases,
        sp::double / n as mean_predicted,
        sa::double / n as mean_actual,
        sae::double / n as mae,
        sqrt(sse::double / n) as rmse,
        (n * spa::double - sp::double * sa::double) / nullif(
            sqrt(n * spp::double - sp::double * sp::double) * sqrt(n * saa::double - sa::double * sa::double), 0
        ) as correlation,
        scope_order

    from sums

)

select * exclude (scope_order) from final
order by scope_order
