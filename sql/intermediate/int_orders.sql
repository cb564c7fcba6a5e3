-- int_orders
-- Grain: one row per order of the snapshot, with its role in customer metrics.
-- Inputs: stg_orders.
-- Materialized: view
--
-- order_kind:
--   purchase  - a completed order with amount >= 0 (zero = free/promotional): a purchase occasion
--   return    - status refunded/returned, or a negative amount: not a purchase occasion
--   cancelled - excluded from every metric (counted in the run manifest)
-- Money (reporting currency):
--   gross_amount    what was paid: purchases and refunded/returned orders
--   returned_amount what was given back: refunded/returned orders and negative return lines
--   net_amount      gross_amount - returned_amount (a refunded order nets to 0; a return line is negative)
--   margin_rate     (amount - cost) / amount when the order has a cost, else its margin column;
--                   null = the configured gross margin applies (see int_customers)

with orders as (

    select * from stg_orders

),

classified as (

    select
        *,
        case
            when status = 'cancelled' then 'cancelled'
            when status in ('refunded', 'returned') or amount < 0 then 'return'
            else 'purchase'
        end as order_kind

    from orders

),

valued as (

    select
        *,
        case when order_kind <> 'cancelled' and amount >= 0 then amount else 0 end as gross_amount,
        case when order_kind = 'return' then abs(amount) else 0 end as returned_amount,
        case
            when cost is not null and amount > 0 then (amount - cost) / amount
            when margin is not null then margin
        end as margin_rate

    from classified

),

final as (

    select
        *,
        gross_amount - returned_amount as net_amount,
        order_kind = 'purchase' as is_purchase

    from valued

)

select * from final
