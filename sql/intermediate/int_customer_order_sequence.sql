-- int_customer_order_sequence
-- Grain: one row per order that is not cancelled (purchases and returns), per customer, in
--        the order placed ((order_ts, order_id): ties between orders of one instant broken by id).
-- Inputs: int_orders; $gross_margin, $servicing_cost_per_order.
-- The customer's order history in sequence, for the journey models:
--   purchases_to_date  purchase orders up to and including this one
--   purchase_number    1, 2, ... over the purchase orders; null for a return
--   purchases_after    purchase orders placed after this one (0 on the latest purchase)
--   order_profit       net_amount x the order's margin rate (its cost or margin column, else
--                      clv.gross_margin: int_customers' profit basis), less
--                      clv.servicing_cost_per_order on a purchase
--   profit_to_date     order_profit summed over the customer's orders up to this one
--   revenue_to_date    net revenue of the customer's orders up to the end of this order's day
--                      (a day's orders and returns count together)

with orders as (

    select * from int_orders
    where int_orders.order_kind <> 'cancelled'

),

valued as (

    select
        orders.customer_id,
        orders.order_id,
        orders.order_ts,
        orders.order_date,
        orders.is_purchase,
        orders.gross_amount,
        orders.net_amount,
        orders.quantity,
        (orders.net_amount * coalesce(orders.margin_rate, $gross_margin))::decimal(18, 4)
            - case when orders.is_purchase then $servicing_cost_per_order::decimal(18, 4) else 0 end
            as order_profit

    from orders

),

sequenced as (

    select
        valued.*,
        sum(valued.is_purchase::integer) over (
            partition by valued.customer_id order by valued.order_ts, valued.order_id
            rows between unbounded preceding and current row
        ) as purchases_to_date,
        sum(valued.is_purchase::integer) over (partition by valued.customer_id) as purchase_orders,
        sum(valued.order_profit) over (
            partition by valued.customer_id order by valued.order_ts, valued.order_id
            rows between unbounded preceding and current row
        ) as profit_to_date,
        sum(valued.net_amount) over (
            partition by valued.customer_id order by valued.order_date
            range between unbounded preceding and current row
        ) as revenue_to_date

    from valued

),

final as (

    select
        sequenced.customer_id,
        sequenced.order_id,
        sequenced.order_ts,
        sequenced.order_date,
        sequenced.is_purchase,
        sequenced.gross_amount,
        sequenced.net_amount,
        sequenced.quantity,
        sequenced.order_profit,
        sequenced.purchases_to_date,
        case when sequenced.is_purchase then sequenced.purchases_to_date end as purchase_number,
        case when sequenced.is_purchase
            then sequenced.purchase_orders - sequenced.purchases_to_date
        end as purchases_after,
        sequenced.profit_to_date,
        sequenced.revenue_to_date

    from sequenced

)

select * from final
