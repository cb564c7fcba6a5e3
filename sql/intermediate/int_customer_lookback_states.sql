-- int_customer_lookback_states
-- Grain: one row per day d of the lookback (D - L ... D - 1, L = $transition_lookback_days)
--        and customer with a purchase up to d.
-- Inputs: int_orders; $snapshot_date, $transition_lookback_days.
-- What the RFM segment of day d is computed from, as int_customers would give it for a
-- snapshot of day d (the same orders, cut at the end of d): recency_days (days from the last
-- purchase day to d), order_count (purchase orders) and net_revenue (orders not cancelled).
-- One pass over the orders for every lookback day: a customer's orders are summed per day --
-- the days before the lookback into its first day -- then accumulated, and each running total
-- holds from its day until the customer's next order day.

with orders as (

    select * from int_orders
    where int_orders.order_kind <> 'cancelled'
        and int_orders.order_date < $snapshot_date::date

),

lookback as (

    select $snapshot_date::date - $transition_lookback_days::integer as first_day

),

per_day as (

    -- a customer's orders by day; the days before the lookback count as its first day
    select
        orders.customer_id,
        greatest(orders.order_date, lookback.first_day) as from_day,
        count(*) filter (where orders.is_purchase) as orders,
        sum(orders.net_amount) as net_revenue,
        max(orders.order_date) filter (where orders.is_purchase) as last_purchase_date
    from orders
    cross join lookback
    group by orders.customer_id, greatest(orders.order_date, lookback.first_day)

),

running as (

    select
        per_day.customer_id,
        per_day.from_day,
        lead(per_day.from_day) over by_day as next_day,
        sum(per_day.orders) over to_date as order_count,
        sum(per_day.net_revenue) over to_date as net_revenue,
        max(per_day.last_purchase_date) over to_date as last_purchase_date
    from per_day
    window
        by_day as (partition by per_day.customer_id order by per_day.from_day),
        to_date as (
            partition by per_day.customer_id order by per_day.from_day
            rows between unbounded preceding and current row
        )

),

days as (

    -- each running total holds from its day up to the day before the next one (or D - 1)
    select
        cast(unnest(generate_series(
            running.from_day,
            coalesce(running.next_day, $snapshot_date::date) - 1,
            interval 1 day
        )) as date) as as_of,
        running.customer_id,
        running.order_count,
        running.net_revenue,
        running.last_purchase_date
    from running

),

final as (

    select
        days.as_of,
        days.customer_id,
        datediff('day', days.last_purchase_date, days.as_of) as recency_days,
        days.order_count,
        days.net_revenue
    from days
    where days.last_purchase_date is not null

)

select * from final
