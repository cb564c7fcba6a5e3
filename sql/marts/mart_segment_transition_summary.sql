-- mart_segment_transition_summary  (published as segment_transition_summary)
-- Grain: one row per previous RFM segment (on D - 1) and current RFM segment (on D) with
--        customers, per snapshot D; previous_segment is null for new customers, rfm_segment
--        null for customers of D - 1 that are no longer customers.
-- Inputs: int_customer_segment_transitions.
-- customer_share = customers / customers of the same previous_segment (for new customers:
-- of all new customers). revenue and previous_revenue are the customers' net revenue to date
-- on D and on D - 1 (0 where they were not customers), summed as DECIMAL.

with transitions as (

    select * from int_customer_segment_transitions

),

cells as (

    select
        any_value(transitions.previous_snapshot_date) as previous_snapshot_date,
        transitions.previous_segment,
        transitions.rfm_segment,
        count(*) as customers,
        coalesce(sum(transitions.revenue), 0)::decimal(18, 4) as revenue,
        coalesce(sum(transitions.previous_revenue), 0)::decimal(18, 4) as previous_revenue

    from transitions
    group by transitions.previous_segment, transitions.rfm_segment

),

final as (

    select
        cells.previous_snapshot_date,
        cells.previous_segment,
        cells.rfm_segment,
        cells.customers,
        cells.customers / sum(cells.customers) over (partition by cells.previous_segment)
            as customer_share,
        cells.revenue,
        cells.previous_revenue

    from cells

)

select * from final
order by final.previous_segment nulls first, final.rfm_segment nulls last
