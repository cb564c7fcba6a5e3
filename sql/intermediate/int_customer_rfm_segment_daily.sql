-- int_customer_rfm_segment_daily
-- Grain: one row per day and customer (int_customer_rfm_scores_daily: the snapshot date and the
--        lookback days) whose (r_score, f_score) cell has a segment.
-- Inputs: int_customer_rfm_scores_daily, cfg_rfm_cells (config rfm.segments resolved for every
--         score cell: the segment of the first rule that holds the cell).

with scores as (

    select * from int_customer_rfm_scores_daily

),

cells as (

    select * from cfg_rfm_cells

),

segmented as (

    select
        scores.as_of,
        scores.customer_id,
        cells.segment as rfm_segment
    from scores
    inner join cells using (r_score, f_score)

)

select * from segmented
