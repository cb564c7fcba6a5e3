-- int_customer_rfm_segment
-- Grain: one row per customer whose (r_score, f_score) cell has a segment.
-- Inputs: int_customer_rfm_segment_daily (its snapshot day); $snapshot_date.
-- The customer's RFM segment on the snapshot date.

with daily_segments as (

    select * from int_customer_rfm_segment_daily
    where int_customer_rfm_segment_daily.as_of = $snapshot_date::date

),

final as (

    select
        daily_segments.customer_id,
        daily_segments.rfm_segment
    from daily_segments

)

select * from final
