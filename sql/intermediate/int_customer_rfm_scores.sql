-- int_customer_rfm_scores
-- Grain: one row per customer with at least one purchase.
-- Inputs: int_customer_rfm_scores_daily (its snapshot day); $snapshot_date.
-- The customer's R, F and M scores and RFM cell on the snapshot date (how they are scored:
-- int_customer_rfm_scores_daily).

with daily_scores as (

    select * from int_customer_rfm_scores_daily
    where int_customer_rfm_scores_daily.as_of = $snapshot_date::date

),

final as (

    select
        daily_scores.customer_id,
        daily_scores.r_score,
        daily_scores.f_score,
        daily_scores.m_score,
        daily_scores.rfm_cell
    from daily_scores

)

select * from final
