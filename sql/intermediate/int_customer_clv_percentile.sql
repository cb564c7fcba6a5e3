-- int_customer_clv_percentile
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_clv_predictions (Python model: pipelines/predictive/predictive.py).
-- clv_percentile ranks the predicted CLV of the longest horizon among all customers
-- (0 = lowest, 100 = highest); null without a prediction.

with predictions as (

    select * from int_clv_predictions

),

ranked as (

    select
        predictions.customer_id,
        case when predictions.predicted_clv_longest is not null
            then 100 * percent_rank() over (order by predictions.predicted_clv_longest)
        end as clv_percentile

    from predictions

)

select * from ranked
