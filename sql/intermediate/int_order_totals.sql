-- int_order_totals
-- Grain: one row per snapshot -- the orders of the snapshot in total.
-- Inputs: int_orders.
-- Cancelled orders count only as cancelled_orders: their amounts are 0 in int_orders and they
-- are left out of the revenue sums.

with orders as (

    select * from int_orders

),

totals as (

    select
        sum(orders.net_amount) filter (where orders.order_kind <> 'cancelled') as net_revenue,
        sum(orders.returned_amount) filter (where orders.order_kind <> 'cancelled') as returned_revenue,
        count(*) filter (where orders.order_kind = 'return') as return_orders,
        count(*) filter (where orders.order_kind = 'cancelled') as cancelled_orders

    from orders

)

select * from totals
