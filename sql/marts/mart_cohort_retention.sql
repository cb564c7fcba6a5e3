-- mart_cohort_retention  (published as cohort_retention)
-- Grain: one row per cohort month (month of the first purchase) and month since the first
-- purchase (0, 1, ... up to the snapshot's month), per snapshot -- months without any activity
-- included, with zeros. The snapshot's own month is counted to the snapshot date.
-- Inputs: int_customers, int_cohort_activity; $snapshot_date.
-- average_order_value = the cell's net revenue / its purchase orders: read down a cohort's
-- months, it says whether customers spend more per order as they stay (up-sell).

with customers as (

    select
        int_customers.customer_id,
        int_customers.first_purchase_month as cohort_month

    from int_customers

),

activity as (

    select * from int_cohort_activity

),

cohorts as (

    select
        customers.cohort_month,
        count(*) as customers

    from customers
    group by customers.cohort_month

),

grid as (

    select
        cohorts.cohort_month,
        cohorts.customers,
        unnest(range(0, datediff('month', cohorts.cohort_month, date_trunc('month', $snapshot_date::date)) + 1)) as months_since_first

    from cohorts

),

final as (

    select
        grid.cohort_month,
        grid.months_since_first,
        grid.customers,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.active_customers, 0) / grid.customers as retention_rate,
        coalesce(activity.revenue, 0) as revenue,
        coalesce(activity.purchase_orders, 0) as purchase_orders,
        activity.revenue / nullif(activity.purchase_orders, 0) as average_order_value,
        sum(coalesce(activity.revenue, 0)) over (
            partition by grid.cohort_month order by grid.months_since_first
        ) / grid.customers as cumulative_revenue_per_customer

    from grid
    left join activity using (cohort_month, months_since_first)

)

select * from final
order by final.cohort_month, final.months_since_first
