-- int_customer_rfm_segment
-- Grain: one row per customer whose (r_score, f_score) cell has a segment.
-- Inputs: int_customer_rfm_scores, cfg_rfm_cells (config rfm.segments resolved for every
--         score cell: the segment of the first rule that holds the cell).

with scores as (

    select * from int_customer_rfm_scores

),

cells as (

    select * from cfg_rfm_cells

),

segmented as (

    select
        scores.customer_id,
        cells.segment as rfm_segment

    from scores
    inner join cells using (r_score, f_score)

)

select * from segmented
