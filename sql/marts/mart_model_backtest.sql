-- mart_model_backtest  (published as model_backtest)
-- Grain: one row per scope, per snapshot: 'overall', then one per calibration frequency
-- bucket ('frequency=0' ... 'frequency=6', 'frequency=7+') -- the usual
-- calibration-vs-holdout view.
-- Inputs: int_backtest_predictions (Python model: pipelines/predictive/predictive.py);
--         $backtest_calibration_date, $backtest_holdout_days.
-- BG/NBD is fitted on the purchase days up to the calibration date and predicts each
-- customer's repeat purchase days in the holdout (the last holdout days up to the snapshot).
-- Sums are taken over DECIMAL values (exact, so independent of thread scheduling); the
-- correlation is Pearson's, from those sums.

with backtest_predictions as (

    select * from int_backtest_predictions

),

predictions as (

    select
        backtest_predictions.customer_id,
        backtest_predictions.frequency,
        backtest_predictions.predicted_purchases::decimal(18, 9) as predicted,
        backtest_predictions.actual_purchases::decimal(18, 9) as actual

    from backtest_predictions
    where backtest_predictions.predicted_purchases is not null

),

scoped as (

    select 'overall' as scope, -1 as scope_order, predictions.* from predictions
    union all
    select
        case when predictions.frequency >= 7 then 'frequency=7+'
            else 'frequency=' || predictions.frequency::varchar
        end as scope,
        least(predictions.frequency, 7) as scope_order,
        predictions.*
    from predictions

),

sums as (

    select
        scoped.scope,
        any_value(scoped.scope_order) as scope_order,
        count(*) as customers,
        sum(scoped.predicted) as sum_predicted,
        sum(scoped.actual) as sum_actual,
        sum(abs(scoped.predicted - scoped.actual)) as sum_abs_error,
        sum((scoped.predicted - scoped.actual) * (scoped.predicted - scoped.actual)) as sum_squared_error,
        sum(scoped.predicted * scoped.actual) as sum_predicted_actual,
        sum(scoped.predicted * scoped.predicted) as sum_predicted_squared,
        sum(scoped.actual * scoped.actual) as sum_actual_squared

    from scoped
    group by scoped.scope

),

final as (

    select
        sums.scope,
        $backtest_calibration_date::date as calibration_end,
        $backtest_holdout_days::integer as holdout_days,
        sums.customers,
        sums.sum_predicted::double as predicted_purchases,
        sums.sum_actual::bigint as actual_purchases,
        sums.sum_predicted::double / sums.customers as mean_predicted,
        sums.sum_actual::double / sums.customers as mean_actual,
        sums.sum_abs_error::double / sums.customers as mae,
        sqrt(sums.sum_squared_error::double / sums.customers) as rmse,
        (sums.customers * sums.sum_predicted_actual::double - sums.sum_predicted::double * sums.sum_actual::double)
            / nullif(
                sqrt(sums.customers * sums.sum_predicted_squared::double - sums.sum_predicted::double * sums.sum_predicted::double)
                * sqrt(sums.customers * sums.sum_actual_squared::double - sums.sum_actual::double * sums.sum_actual::double),
                0
            ) as correlation,
        sums.scope_order

    from sums

)

select * exclude (scope_order) from final
order by final.scope_order
