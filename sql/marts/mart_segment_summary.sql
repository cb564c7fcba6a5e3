-- mart_segment_summary  (published as segment_summary)
-- Grain: one row per dimension and segment, per snapshot. Dimensions: rfm_segment, abc_class,
-- loyalty_tier, lifecycle_stage, journey_stage, journey_state (journey stage / activity
-- state, e.g. repeat/at_risk), acquisition_channel, acquisition_month (the cohort, YYYY-MM),
-- and the score distributions r_score, f_score and m_score (segment = the score, '1'..'5').
-- Inputs: mart_customer_rfm, mart_customer_clv, mart_customer_journey, int_clv_predictions
--         (Python model).
-- ltv_cac_ratio of a segment = total clv_retention / total CAC of its customers with a CAC.
-- aov_growth of a segment = total recent_order_value / total first_order_value of its
-- customers with both (a ratio of averages: one big first order does not dominate).
-- Doubles are aggregated as DECIMAL (exact, so independent of thread scheduling).

with customer_rfm as (

    select * from mart_customer_rfm

),

customer_clv as (

    select * from mart_customer_clv

),

customer_journey as (

    select * from mart_customer_journey

),

predictions as (

    select * from int_clv_predictions

),

customers as (

    select
        customer_rfm.customer_id,
        customer_rfm.recency_days,
        customer_rfm.order_count,
        customer_rfm.monetary_total,
        customer_rfm.rfm_segment,
        customer_rfm.abc_class,
        customer_rfm.loyalty_tier,
        customer_rfm.lifecycle_stage,
        customer_journey.journey_stage,
        customer_journey.journey_stage || '/' || customer_journey.activity_state as journey_state,
        customer_journey.first_order_value,
        customer_journey.recent_order_value::decimal(38, 10) as recent_order_value,
        customer_journey.first_order_profit_after_cac::decimal(38, 10) as first_order_profit_after_cac,
        customer_journey.cac_paid_back,
        customer_journey.cac_payback_orders,
        customer_journey.cac_payback_days,
        customer_journey.days_to_second_purchase,
        customer_rfm.r_score,
        customer_rfm.f_score,
        customer_rfm.m_score,
        coalesce(customer_clv.acquisition_channel, 'unknown') as acquisition_channel,
        strftime(customer_clv.acquisition_month, '%Y-%m') as acquisition_month,
        customer_clv.clv_simple::decimal(38, 10) as clv_simple,
        customer_clv.clv_retention::decimal(38, 10) as clv_retention,
        customer_clv.cac::decimal(38, 10) as cac,
        predictions.predicted_clv_longest::decimal(38, 10) as predicted_clv

    from customer_rfm
    inner join customer_clv using (customer_id)
    inner join customer_journey using (customer_id)
    inner join predictions using (customer_id)

),

by_dimension as (

    select 'rfm_segment' as dimension, customers.rfm_segment as segment, customers.* from customers
    union all
    select 'abc_class', customers.abc_class, customers.* from customers
    union all
    select 'loyalty_tier', customers.loyalty_tier, customers.* from customers
    union all
    select 'lifecycle_stage', customers.lifecycle_stage, customers.* from customers
    union all
    select 'journey_stage', customers.journey_stage, customers.* from customers
    union all
    select 'journey_state', customers.journey_state, customers.* from customers
    union all
    select 'acquisition_channel', customers.acquisition_channel, customers.* from customers
    union all
    select 'acquisition_month', customers.acquisition_month, customers.* from customers
    union all
    select 'r_score', customers.r_score::varchar, customers.* from customers
    union all
    select 'f_score', customers.f_score::varchar, customers.* from customers
    union all
    select 'm_score', customers.m_score::varchar, customers.* from customers

),

totals as (

    select
        count(*) as all_customers,
        sum(customers.monetary_total) as all_revenue

    from customers

),

final as (

    select
        by_dimension.dimension,
        by_dimension.segment,
        count(*) as customers,
        count(*) / any_value(totals.all_customers) as customer_share,
        sum(by_dimension.monetary_total) as revenue,
        sum(by_dimension.monetary_total) / nullif(any_value(totals.all_revenue), 0) as revenue_share,
        avg(by_dimension.recency_days) as avg_recency_days,
        avg(by_dimension.order_count) as avg_order_count,
        avg(by_dimension.monetary_total) as avg_monetary_total,
        avg(by_dimension.clv_simple) as avg_clv_simple,
        avg(by_dimension.clv_retention) as avg_clv_retention,
        avg(by_dimension.predicted_clv) as avg_predicted_clv,
        avg(by_dimension.cac) as avg_cac,
        sum(by_dimension.clv_retention) filter (where by_dimension.cac is not null)
            / nullif(sum(by_dimension.cac), 0) as ltv_cac_ratio,
        avg(by_dimension.days_to_second_purchase) as avg_days_to_second_purchase,
        avg(by_dimension.first_order_value) as avg_first_order_value,
        avg(by_dimension.recent_order_value) as avg_recent_order_value,
        sum(by_dimension.recent_order_value) filter (where by_dimension.first_order_value > 0)
            / nullif(sum(by_dimension.first_order_value) filter (where by_dimension.recent_order_value is not null), 0)
            as aov_growth,
        avg(by_dimension.first_order_profit_after_cac) as avg_first_order_profit_after_cac,
        avg(case when by_dimension.cac_paid_back is not null
            then case when by_dimension.cac_paid_back then 0.0 else 1.0 end end) as cac_unpaid_share,
        avg(by_dimension.cac_payback_orders) as avg_cac_payback_orders,
        avg(by_dimension.cac_payback_days) as avg_cac_payback_days

    from by_dimension
    cross join totals
    group by by_dimension.dimension, by_dimension.segment

)

select * from final
order by final.dimension, final.segment
