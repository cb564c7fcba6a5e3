-- mart_customer_rfm  (published as customer_rfm)
-- Grain: one row per customer with at least one purchase, per snapshot.
-- Inputs: int_customer_orders; $snapshot_date, $rfm_bins.
--
-- Scores are bins of the customer's rank (5 bins = quintiles): score = 1 + floor(bins * (rank - 1) / n)
-- with rank() so that equal values share a score (a customer's score never depends on their id),
-- and the result is the same on every rerun. Recency is reversed: the most recent buyers score
-- highest.

with customers as (

    select * from int_customer_orders

),

measured as (

    select
        customer_id,
        first_order_date,
        last_order_date,
        datediff('day', last_order_date, $snapshot_date::date) as recency_days,
        order_count,
        monetary_total,
        email_hmac

    from customers

),

scored as (

    select
        *,
        1 + floor($rfm_bins * (rank() over (order by recency_days desc) - 1) / count(*) over ())::integer as r_score,
        1 + floor($rfm_bins * (rank() over (order by order_count asc) - 1) / count(*) over ())::integer as f_score,
        1 + floor($rfm_bins * (rank() over (order by monetary_total asc) - 1) / count(*) over ())::integer as m_score

    from measured

)

select
    customer_id,
    first_order_date,
    last_order_date,
    recency_days,
    order_count,
    monetary_total,
    r_score,
    f_score,
    m_score,
    email_hmac

from scored
order by customer_id
