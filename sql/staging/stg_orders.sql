-- stg_orders
-- Grain: one row per accepted order placed before the end of the snapshot day (UTC).
-- Inputs: source_orders (the run's validated, staged orders: pipelines/stage.py).
-- Materialized: view
-- Staging only renames, casts and cleans; what an order means is decided in int_orders.
-- Money becomes DECIMAL(18, 4): sums of money are then exact, so they do not depend on how
-- DuckDB splits the work between threads, and a rerun gives the same rows to the last digit.

with source as (

    select * from source_orders

),

renamed as (

    select
        order_id,
        customer_id,
        order_ts,
        cast(order_ts as date) as order_date,
        cast(amount as decimal(18, 4)) as amount,
        upper(currency) as currency,
        coalesce(lower(status), 'completed') as status,
        quantity,
        cast(cost as decimal(18, 4)) as cost,
        margin,
        nullif(trim(lower(channel)), '') as channel,
        nullif(trim(referred_by), '') as referred_by,
        email_hmac

    from source

)

select * from renamed
