-- stg_orders
-- Grain: one row per accepted order placed before the end of the snapshot day (UTC).
-- Inputs: source_orders (the run's validated, staged orders: pipelines/transform/snapshot_orders.py).
-- Materialized: view
-- Staging only renames and casts; values are cleaned and an order's meaning is decided in
-- int_orders. Money becomes DECIMAL(18, 4): sums of money are then exact, so they do not
-- depend on how DuckDB splits the work between threads, and a rerun gives the same rows to
-- the last digit.

with source as (

    select * from source_orders

),

renamed as (

    select
        source.order_id,
        source.customer_id,
        source.order_ts,
        cast(source.order_ts as date) as order_date,
        cast(source.amount as decimal(18, 4)) as amount,
        source.currency,
        source.status,
        source.quantity,
        cast(source.cost as decimal(18, 4)) as cost,
        source.margin,
        source.channel,
        source.referred_by,
        source.email_hmac

    from source

)

select * from renamed
