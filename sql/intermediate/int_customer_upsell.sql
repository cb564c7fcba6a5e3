-- int_customer_upsell
-- Grain: one row per customer with at least one purchase order.
-- Inputs: int_customer_order_sequence; $journey_recent_orders.
-- Does the customer buy more per order as they come back (up-sell and cross-sell)?
--   first_order_value       value (amount) of the first purchase order
--   recent_order_value      mean value of the last N purchase orders placed after the first
--                           purchase day (N = journey.recent_orders); null for a one-time buyer
--                           (more orders on the first day are the first visit, not a return)
--   aov_growth              recent_order_value / first_order_value (null when either is null
--                           or the first order was free)
--   first_order_items       items (quantity) of the first purchase order; null without quantity
--   recent_items_per_order  mean items of the same recent orders that have a quantity
--   items_per_order_trend   least-squares slope of items on purchase_number over the purchase
--                           orders with a quantity: items per order gained with each order
--                           (null with fewer than two such orders or one distinct number).
--                           Computed from exact integer sums, so a rerun gives the same bits.

with purchases as (

    select * from int_customer_order_sequence
    where int_customer_order_sequence.is_purchase

),

first_orders as (

    select
        purchases.customer_id,
        purchases.order_date as first_order_date,
        purchases.gross_amount as first_order_value,
        purchases.quantity as first_order_items

    from purchases
    where purchases.purchase_number = 1

),

recent_orders as (

    select
        purchases.customer_id,
        avg(purchases.gross_amount) as recent_order_value,
        avg(purchases.quantity) as recent_items_per_order

    from purchases
    inner join first_orders using (customer_id)
    where purchases.order_date > first_orders.first_order_date
        and purchases.purchases_after < $journey_recent_orders::integer
    group by purchases.customer_id

),

item_sums as (

    select
        purchases.customer_id,
        count(purchases.quantity)::hugeint as n,
        sum(purchases.purchase_number) filter (where purchases.quantity is not null)::hugeint as sum_x,
        sum(purchases.quantity)::hugeint as sum_y,
        sum(purchases.purchase_number * purchases.quantity)::hugeint as sum_xy,
        sum(purchases.purchase_number * purchases.purchase_number)
            filter (where purchases.quantity is not null)::hugeint as sum_xx

    from purchases
    group by purchases.customer_id

),

item_trend as (

    select
        item_sums.customer_id,
        case when item_sums.n >= 2 and item_sums.n * item_sums.sum_xx - item_sums.sum_x * item_sums.sum_x > 0
            then (item_sums.n * item_sums.sum_xy - item_sums.sum_x * item_sums.sum_y)::double
                / (item_sums.n * item_sums.sum_xx - item_sums.sum_x * item_sums.sum_x)::double
        end as items_per_order_trend

    from item_sums

),

final as (

    select
        first_orders.customer_id,
        first_orders.first_order_value,
        recent_orders.recent_order_value,
        case when first_orders.first_order_value > 0
            then recent_orders.recent_order_value / first_orders.first_order_value
        end as aov_growth,
        first_orders.first_order_items,
        recent_orders.recent_items_per_order,
        item_trend.items_per_order_trend

    from first_orders
    left join recent_orders using (customer_id)
    left join item_trend using (customer_id)

)

select * from final
