-- mart_cohort_retention  (published as cohort_retention)
-- Grain: one row per cohort month (month of the first purchase) and month since the first
-- purchase (0, 1, ... up to the snapshot's month), per snapshot -- months without any activity
-- included, with zeros. The snapshot's own month is counted to the snapshot date.
-- Inputs: int_customers, int_orders; $snapshot_date.

with customers as (

    select customer_id, date_trunc('month', first_purchase_date)::date as cohort_month
    from int_customers

),

orders as (

    select customer_id, date_trunc('month', order_date)::date as order_month, net_amount, is_purchase
    from int_orders
    where order_kind <> 'cancelled'

),

cohorts as (

    select cohort_month, count(*) as customers
    from customers
    group by cohort_month

),

grid as (

    select
        cohort_month,
        customers,
        unnest(range(0, datediff('month', cohort_month, date_trunc('month', $snapshot_date::date)) + 1)) as months_since_first

    from cohorts

),

activity as (

    select
        c.cohort_month,
        datediff('month', c.cohort_month, o.order_month) as months_since_first,
        count(distinct o.customer_id) filter (where o.is_purchase) as active_customers,
        sum(o.net_amount) as revenue

    from orders as o
    inner join customers as c using (customer_id)
    group by all

),

final as (

    select
        g.cohort_month,
        g.months_since_first,
        g.customers,
        coalesce(a.active_customers, 0) as active_customers,
        coalesce(a.active_customers, 0) / g.customers as retention_rate,
        coalesce(a.revenue, 0) as revenue,
        sum(coalesce(a.revenue, 0)) over (
            partition by g.cohort_month order by g.months_since_first
        ) / g.customers as cumulative_revenue_per_customer

    from grid as g
    left join activity as a using (cohort_month, months_since_first)

)

select * from final
order by cohort_month, months_since_first
