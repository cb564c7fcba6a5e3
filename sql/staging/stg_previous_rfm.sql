-- stg_previous_rfm
-- Grain: one row per customer of the previous snapshot (the latest snapshot published before
--        this one); no rows when there is none.
-- Inputs: source_previous_rfm (its published customer_rfm and segment_transitions, read by
--         pipelines/transform/previous_snapshot.py).
-- Materialized: view
-- Staging only renames and casts: the published revenue (a DOUBLE) becomes DECIMAL(18, 4)
-- again, as money is from staging on. previous_segment_changed_on is null when the previous
-- snapshot was published before segment_transitions existed.

with source as (

    select * from source_previous_rfm

),

renamed as (

    select
        source.customer_id,
        cast(source.snapshot_date as date) as previous_snapshot_date,
        source.rfm_segment as previous_segment,
        cast(source.monetary_total as decimal(18, 4)) as previous_revenue,
        cast(source.segment_changed_on as date) as previous_segment_changed_on

    from source

)

select * from renamed
