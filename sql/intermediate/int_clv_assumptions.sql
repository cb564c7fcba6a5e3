-- int_clv_assumptions
-- Grain: one row per snapshot -- the rates the formula CLVs assume.
-- Inputs: int_retention; $clv_retention_rate, $discount_rate, $clv_expected_lifetime_years.
--   retention_rate          r: configured (clv.retention_rate), else the measured annual retention
--   discount_rate           d: the annual discount rate (clv.discount_rate)
--   expected_lifetime_years configured (clv.expected_lifetime_years), else 1 / (1 - r)

with retention as (

    select * from int_retention

),

rates as (

    select
        coalesce($clv_retention_rate::double, retention.annual_retention_rate) as retention_rate,
        $discount_rate::double as discount_rate

    from retention

),

final as (

    select
        rates.retention_rate,
        rates.discount_rate,
        coalesce(
            $clv_expected_lifetime_years::double,
            case when rates.retention_rate < 1 then 1 / (1 - rates.retention_rate) end
        ) as expected_lifetime_years

    from rates

)

select * from final
