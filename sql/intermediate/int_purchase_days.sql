-- int_purchase_days
-- Grain: one row per customer and day with at least one purchase.
-- Inputs: int_orders.
-- The models of customer value count purchase days, not orders: two orders on one day are
-- one purchase occasion (the convention of the BG/NBD literature and of lifetimes).

with purchases as (

    select * from int_orders
    where is_purchase

),

per_day as (

    select
        customer_id,
        order_date as purchase_date,
        count(*) as orders,
        sum(amount) as purchase_value

    from purchases
    group by customer_id, order_date

)

select * from per_day
