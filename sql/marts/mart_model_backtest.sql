-- mart_model_backtest  (published as model_backtest)
-- Grain: one row per purchase model and scope, per snapshot. Scopes: 'overall'; one per
-- calibration frequency bucket ('frequency=0' ... 'frequency=6', 'frequency=7+': the usual
-- calibration-vs-holdout view); one per decile of predicted purchases ('decile=1' lowest ...
-- 'decile=10' highest).
-- Inputs: int_backtest_predictions (Python model: pipelines/predictive/predictive.py);
--         $backtest_calibration_date, $backtest_holdout_days.
-- Each purchase model (every candidate under predictive.model auto; `selected` marks the one
-- scoring the snapshot) is fitted on the purchase days up to the calibration date and
-- predicts each customer's repeat purchase days in the holdout (the last holdout days up to
-- the snapshot). Sums are taken over DECIMAL values (exact, so independent of thread
-- scheduling); the correlation is Pearson's, from those sums. The Gini (overall rows) is the
-- normalised Gini of predicted holdout value against actual holdout value: the area between
-- the Lorenz curve of actual value, customers ranked by predicted value (ties as one block),
-- and the diagonal, divided by that of the perfect ranking (by actual value itself).

with backtest_predictions as (

    select * from int_backtest_predictions

),

predictions as (

    select
        backtest_predictions.model,
        backtest_predictions.selected,
        backtest_predictions.customer_id,
        backtest_predictions.frequency,
        backtest_predictions.predicted_purchases::decimal(18, 9) as predicted,
        backtest_predictions.actual_purchases::decimal(18, 9) as actual,
        backtest_predictions.predicted_value::decimal(24, 9) as predicted_value,
        backtest_predictions.actual_value::decimal(24, 9) as actual_value,
        ntile(10) over (
            partition by backtest_predictions.model
            order by backtest_predictions.predicted_purchases, backtest_predictions.customer_id
        ) as decile

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
    union all
    select
        'decile=' || predictions.decile::varchar as scope,
        10 + predictions.decile as scope_order,
        predictions.*
    from predictions

),

sums as (

    select
        scoped.model,
        scoped.scope,
        any_value(scoped.selected) as selected,
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
    group by scoped.model, scoped.scope

),

ranked_by_predicted as (

    select
        predictions.model,
        predictions.predicted_value as rank_value,
        count(*) as customers,
        sum(predictions.actual_value) as actual_value

    from predictions
    where predictions.predicted_value is not null
    group by predictions.model, predictions.predicted_value

),

ranked_by_actual as (

    select
        predictions.model,
        predictions.actual_value as rank_value,
        count(*) as customers,
        sum(predictions.actual_value) as actual_value

    from predictions
    where predictions.predicted_value is not null
    group by predictions.model, predictions.actual_value

),

lorenz_blocks as (

    select 'predicted' as ranking, ranked_by_predicted.* from ranked_by_predicted
    union all
    select 'actual' as ranking, ranked_by_actual.* from ranked_by_actual

),

lorenz_cumulative as (

    select
        lorenz_blocks.model,
        lorenz_blocks.ranking,
        lorenz_blocks.customers,
        lorenz_blocks.actual_value,
        sum(lorenz_blocks.actual_value) over ranking_window as value_through,
        sum(lorenz_blocks.customers) over (partition by lorenz_blocks.model, lorenz_blocks.ranking) as all_customers,
        sum(lorenz_blocks.actual_value) over (partition by lorenz_blocks.model, lorenz_blocks.ranking) as all_value

    from lorenz_blocks
    window ranking_window as (
        partition by lorenz_blocks.model, lorenz_blocks.ranking
        order by lorenz_blocks.rank_value desc
        rows between unbounded preceding and current row
    )

),

lorenz_areas as (

    -- Trapezoids under the Lorenz curve (share of customers -> share of actual value, best
    -- ranked first): area = sum of width x (value share before + value share through) / 2,
    -- summed exactly as DECIMAL (customers x value) and divided once, so a rerun gives the
    -- same bits whatever the thread schedule.
    select
        lorenz_cumulative.model,
        lorenz_cumulative.ranking,
        sum(
            lorenz_cumulative.customers
            * (2 * lorenz_cumulative.value_through - lorenz_cumulative.actual_value)
        )::double
            / nullif(
                2 * any_value(lorenz_cumulative.all_customers)::double
                * any_value(lorenz_cumulative.all_value)::double,
                0
            ) as area

    from lorenz_cumulative
    group by lorenz_cumulative.model, lorenz_cumulative.ranking

),

gini as (

    select
        predicted_area.model,
        (2 * predicted_area.area - 1) / nullif(2 * actual_area.area - 1, 0) as gini

    from lorenz_areas as predicted_area
    inner join lorenz_areas as actual_area
        on predicted_area.model = actual_area.model
        and actual_area.ranking = 'actual'
    where predicted_area.ranking = 'predicted'

),

final as (

    select
        sums.model,
        sums.scope,
        sums.selected,
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
        case when sums.scope = 'overall' then gini.gini end as gini,
        sums.scope_order

    from sums
    left join gini using (model)

)

select * exclude (scope_order) from final
order by final.model, final.scope_order
