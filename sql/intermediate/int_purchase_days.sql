-- int_purchase_days
-- Grain: one row per customer and day with at least one purchase.
-- Inputs: int_orders.
-- The models of customer value count purchase days, not orders: two orders on one day are
-- one purchase occasion (the convention of the BG/NBD literature and of lifetimes).

with purchases as (

    select * from int_orders
    where int_orders.is_purchase

),

per_day as (

    select
        purchases.customer_id,
        purchases.order_date as purchase_date,
        count(*) as orders,
        sum(purchases.amount) as purchase_value

    from purchases
    group by purchases.customer_id, purchases.order_date

)

select * from per_day
