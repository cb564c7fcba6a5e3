-- stg_segment_history
-- Grain: one row per day of the lookback (D - L ... D - 1, L = rfm.transition_lookback_days)
--        and customer of that day.
-- Inputs: source_segment_history (each day's int_customer_rfm_segment and int_customers,
--         rebuilt from this snapshot's staged orders by marts.segment_history).
-- Materialized: view
-- Staging only renames and casts: money is DECIMAL(18, 4) from staging on.

with source as (

    select * from source_segment_history

),

renamed as (

    select
        cast(source.as_of as date) as as_of,
        source.customer_id,
        source.rfm_segment,
        cast(source.net_revenue as decimal(18, 4)) as net_revenue

    from source

)

select * from renamed
