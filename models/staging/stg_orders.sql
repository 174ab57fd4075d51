select
    order_id,
    user_id,
    country,
    ordered_at,
    amount,
    refunded,
    case when refunded then amount else 0 end as refund_amount,
    latency_ms
from {{ source('raw', 'orders') }}
