-- timeless (params: none)
SELECT "t1"."sku", SUM("t1"."quantity") AS "stock" FROM (SELECT * FROM "product_offerings" AS "t0" WHERE "t0"."is_enabled") AS "t1" GROUP BY 1
