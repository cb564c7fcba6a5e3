-- int_orders
-- Grain: one row per order of the snapshot, with its role in customer metrics.
-- Inputs: stg_orders.
-- Materialized: view
--
-- Cleaning: currency upper case; status lower case, missing = completed; channel lower case
-- and trimmed, empty = null; referred_by trimmed, empty = null.
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

cleaned as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_ts,
        orders.order_date,
        orders.amount,
        upper(orders.currency) as currency,
        coalesce(lower(orders.status), 'completed') as status,
        orders.quantity,
        orders.cost,
        orders.margin,
        nullif(trim(lower(orders.channel)), '') as channel,
        nullif(trim(orders.referred_by), '') as referred_by,
        orders.email_hmac

    from orders

),

classified as (

    select
        cleaned.*,
        case
            when cleaned.status = 'cancelled' then 'cancelled'
            when cleaned.status in ('refunded', 'returned') or cleaned.amount < 0 then 'return'
            else 'purchase'
        end as order_kind

    from cleaned

),

valued as (

    select
        classified.*,
        case
            when classified.order_kind <> 'cancelled' and classified.amount >= 0 then classified.amount
            else 0
        end as gross_amount,
        case when classified.order_kind = 'return' then abs(classified.amount) else 0 end as returned_amount,
        case
            when classified.cost is not null and classified.amount > 0
                then (classified.amount - classified.cost) / classified.amount
            when classified.margin is not null then classified.margin
        end as margin_rate

    from classified

),

final as (

    select
        valued.*,
        valued.gross_amount - valued.returned_amount as net_amount,
        valued.order_kind = 'purchase' as is_purchase

    from valued

)

select * from final
