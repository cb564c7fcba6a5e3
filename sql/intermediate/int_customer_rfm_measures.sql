-- int_customer_rfm_measures
-- Grain: one row per day, customer and score (r, f, m) that is scored that day: the snapshot
--        date D (all three scores) and each lookback day D - L ... D - 1 (r and f: the
--        segment map reads those two).
-- Inputs: int_customers (D), int_customer_lookback_states (the lookback days); $snapshot_date.
-- The measures behind the R, F and M scores, each oriented so that higher earns a higher
-- score: R = days since the last purchase (reversed: the most recent score highest);
-- F = purchase orders; M = net revenue.

with customers as (

    select * from int_customers

),

lookback_states as (

    select * from int_customer_lookback_states

),

states as (

    select
        $snapshot_date::date as as_of,
        customers.customer_id,
        customers.recency_days,
        customers.order_count,
        customers.net_revenue,
        true as is_snapshot
    from customers
    union all
    select
        lookback_states.as_of,
        lookback_states.customer_id,
        lookback_states.recency_days,
        lookback_states.order_count,
        lookback_states.net_revenue,
        false as is_snapshot
    from lookback_states

),

measures as (

    select states.as_of, states.customer_id, 'r' as score_name, -states.recency_days as measure
    from states
    union all
    select states.as_of, states.customer_id, 'f' as score_name, states.order_count as measure
    from states
    union all
    select states.as_of, states.customer_id, 'm' as score_name, states.net_revenue as measure
    from states
    where states.is_snapshot

)

select * from measures
