-- Of the kinds $1, those no worker has ever registered (bosun.served_kinds), in the order given.
SELECT k.kind FROM unnest($1::text[]) WITH ORDINALITY AS k(kind, ord)
WHERE NOT EXISTS (SELECT 1 FROM bosun.served_kinds AS s WHERE s.kind = k.kind)
ORDER BY k.ord
