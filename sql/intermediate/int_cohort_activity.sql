-- int_cohort_activity
-- Grain: one row per cohort month (month of the customer's first purchase) and month since
--        the first purchase in which the cohort had an order that is not cancelled.
-- Inputs: int_customers, int_orders.
-- Counts and sums only (active customers, net revenue, purchase orders), so the cells of
-- customer-disjoint parts add up to the whole: a sharded build computes this per shard and
-- sums the shards' cells (pipelines/transform/sharded.py, SUMMED). mart_cohort_retention puts
-- the cells on the grid of every cohort's months.

with orders as (

    select
        int_orders.customer_id,
        date_trunc('month', int_orders.order_date)::date as order_month,
        int_orders.net_amount,
        int_orders.is_purchase

    from int_orders
    where int_orders.order_kind <> 'cancelled'

),

customers as (

    select
        int_customers.customer_id,
        int_customers.first_purchase_month as cohort_month

    from int_customers

),

customer_months as (

    -- one row per customer and month with an order, from the orders alone: plain aggregates,
    -- which spill (a count(distinct customer_id) per cohort and month cannot; and with the join
    -- to the customers in the same query, the join's table and this aggregate's ran out of
    -- DuckDB's 1.8 GB together at 100M orders)
    select
        orders.customer_id,
        orders.order_month,
        bool_or(orders.is_purchase) as purchased,
        sum(orders.net_amount) as revenue,
        count(*) filter (where orders.is_purchase) as purchase_orders

    from orders
    group by orders.customer_id, orders.order_month

),

cohort_months as (

    select
        customers.cohort_month,
        datediff('month', customers.cohort_month, customer_months.order_month)
            as months_since_first,
        customer_months.purchased,
        customer_months.revenue,
        customer_months.purchase_orders

    from customer_months
    inner join customers on customers.customer_id = customer_months.customer_id

),

activity as (

    select
        cohort_months.cohort_month,
        cohort_months.months_since_first,
        count(*) filter (where cohort_months.purchased) as active_customers,
        sum(cohort_months.revenue) as revenue,
        sum(cohort_months.purchase_orders)::bigint as purchase_orders

    from cohort_months
    group by cohort_months.cohort_month, cohort_months.months_since_first

)

select * from activity
