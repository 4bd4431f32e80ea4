-- Whether bosun.jobs has a row this transaction can see from heap page $1 on (a scan of the
-- tail only, by TID range).
SELECT EXISTS (SELECT 1 FROM bosun.jobs WHERE ctid >= format('(%s,0)', $1::bigint)::tid)
