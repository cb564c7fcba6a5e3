-- int_customer_orders
-- Grain: one row per customer with at least one purchase in the snapshot.
-- Inputs: int_orders.
-- Customers whose orders are all returns or cancellations have no purchase occasion and are
-- not customers for value metrics; their returns still count in revenue totals elsewhere.

with orders as (

    select * from int_orders
    where order_kind <> 'cancelled'

),

per_customer as (

    select
        customer_id,
        min(order_date) filter (where is_purchase) as first_order_date,
        max(order_date) filter (where is_purchase) as last_order_date,
        count(*) filter (where is_purchase) as order_count,
        sum(net_amount) as monetary_total,
        arg_max(email_hmac, order_ts) filter (where email_hmac is not null) as email_hmac

    from orders
    group by customer_id

)

select * from per_customer
where order_count > 0
