-- mart_segment_summary  (published as segment_summary)
-- Grain: one row per dimension and segment, per snapshot. Dimensions: rfm_segment, abc_class,
-- loyalty_tier, lifecycle_stage, acquisition_channel and acquisition_month (the cohort, YYYY-MM).
-- Inputs: mart_customer_rfm, mart_customer_clv, int_clv_predictions.
-- ltv_cac_ratio of a segment = total clv_retention / total CAC of its customers with a CAC.
-- Doubles are aggregated as DECIMAL (exact, so independent of thread scheduling).

with customers as (

    select
        r.customer_id,
        r.recency_days,
        r.order_count,
        r.monetary_total,
        r.rfm_segment,
        r.abc_class,
        r.loyalty_tier,
        r.lifecycle_stage,
        coalesce(v.acquisition_channel, 'unknown') as acquisition_channel,
        strftime(v.acquisition_month, '%Y-%m') as acquisition_month,
        v.clv_simple::decimal(38, 10) as clv_simple,
        v.clv_retention::decimal(38, 10) as clv_retention,
        v.cac::decimal(38, 10) as cac,
        p.predicted_clv_longest::decimal(38, 10) as predicted_clv

    from mart_customer_rfm as r
    inner join mart_customer_clv as v using (customer_id)
    inner join int_clv_predictions as p using (customer_id)

),

long as (

    select 'rfm_segment' as dimension, rfm_segment as segment, * from customers
    union all
    select 'abc_class', abc_class, * from customers
    union all
    select 'loyalty_tier', loyalty_tier, * from customers
    union all
    select 'lifecycle_stage', lifecycle_stage, * from customers
    union all
    select 'acquisition_channel', acquisition_channel, * from customers
    union all
    select 'acquisition_month', acquisition_month, * from customers

),

totals as (

    select count(*) as all_customers, sum(monetary_total) as all_revenue
    from customers

),

final as (

    select
        l.dimension,
        l.segment,
        count(*) as customers,
        count(*) / any_value(t.all_customers) as customer_share,
        sum(l.monetary_total) as revenue,
        sum(l.monetary_total) / nullif(any_value(t.all_revenue), 0) as revenue_share,
        avg(l.recency_days) as avg_recency_days,
        avg(l.order_count) as avg_order_count,
        avg(l.monetary_total) as avg_monetary_total,
        avg(l.clv_simple) as avg_clv_simple,
        avg(l.clv_retention) as avg_clv_retention,
        avg(l.predicted_clv) as avg_predicted_clv,
        avg(l.cac) as avg_cac,
        sum(l.clv_retention) filter (where l.cac is not null) / nullif(sum(l.cac), 0) as ltv_cac_ratio

    from long as l
    cross join totals as t
    group by l.dimension, l.segment

)

select * from final
order by dimension, segment
