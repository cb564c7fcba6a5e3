-- mart_kpi_summary  (published as kpi_summary)
-- Grain: one row per snapshot.
-- Inputs: int_orders, int_retention, int_clv_predictions, mart_customer_rfm, mart_customer_clv;
--         $active_days.
-- Active customers bought in the last active_days days; retention and churn compare the
-- last active_days with the active_days before (period over period).
-- Averages of doubles are taken over DECIMAL values: exact sums do not depend on how DuckDB
-- splits the work between threads, so a rerun gives the same row.

with orders as (

    select * from int_orders
    where order_kind <> 'cancelled'

),

all_orders as (

    select order_kind from int_orders

),

rfm as (

    select * from mart_customer_rfm

),

clv as (

    select * from mart_customer_clv

),

retention as (

    select * from int_retention

),

customers as (

    select
        count(*) as customers,
        count(*) filter (where recency_days < $active_days) as active_customers,
        count(*) filter (where tenure_days < $active_days) as new_customers,
        avg(case when order_count >= 2 then 1.0 else 0.0 end) as repeat_purchase_rate,
        sum(order_count)::bigint as purchase_orders,
        sum(greatest(monetary_total, 0)) as positive_revenue,
        sum(greatest(monetary_total, 0)) filter (where abc_class = 'A') as revenue_a,
        sum(greatest(monetary_total, 0)) filter (where abc_class = 'B') as revenue_b,
        sum(greatest(monetary_total, 0)) filter (where abc_class = 'C') as revenue_c

    from rfm

),

money as (

    select
        sum(net_amount) as net_revenue,
        sum(returned_amount) as returned_revenue
    from orders

),

counts as (

    select
        count(*) filter (where order_kind = 'return') as return_orders,
        count(*) filter (where order_kind = 'cancelled') as cancelled_orders
    from all_orders

),

values as (

    select
        avg(clv_simple::decimal(38, 10)) as avg_clv_simple,
        avg(clv_retention::decimal(38, 10)) as avg_clv_retention,
        avg(expected_lifetime_years::decimal(38, 10)) as average_lifespan_years
    from clv

),

predicted as (

    select
        avg(predicted_clv_longest::decimal(38, 10)) as avg_predicted_clv,
        sum(p_alive::decimal(38, 12)) as expected_active_customers
    from int_clv_predictions

),

final as (

    select
        c.customers,
        c.active_customers,
        c.new_customers,
        c.repeat_purchase_rate,
        r.period_retention_rate as retention_rate,
        1 - r.period_retention_rate as churn_rate,
        r.annual_retention_rate,
        m.net_revenue,
        m.returned_revenue,
        c.purchase_orders,
        n.return_orders,
        n.cancelled_orders,
        m.net_revenue / nullif(c.purchase_orders, 0) as average_order_value,
        c.purchase_orders / nullif(c.customers, 0) as purchase_frequency,
        v.average_lifespan_years,
        v.avg_clv_simple,
        v.avg_clv_retention,
        p.avg_predicted_clv,
        p.expected_active_customers,
        coalesce(c.revenue_a, 0) / nullif(c.positive_revenue, 0) as revenue_share_a,
        coalesce(c.revenue_b, 0) / nullif(c.positive_revenue, 0) as revenue_share_b,
        coalesce(c.revenue_c, 0) / nullif(c.positive_revenue, 0) as revenue_share_c

    from customers as c
    cross join money as m
    cross join counts as n
    cross join retention as r
    cross join values as v
    cross join predicted as p

)

select * from final
