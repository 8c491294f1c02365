-- What /package/stats counts, kept beside each record so counting never reads the descriptors: the
-- descriptor's count_of_rows, and its countryCode(s) upper-cased as a JSON array. Nullable, so a replica of the
-- previous release keeps writing records meanwhile (its rows count as having neither).
ALTER TABLE packages ADD COLUMN count_of_rows BIGINT;
ALTER TABLE packages ADD COLUMN country_codes TEXT;
UPDATE packages SET
    count_of_rows = CASE
        WHEN (package::jsonb ->> 'count_of_rows') ~ '^[0-9]{1,18}$' THEN (package::jsonb ->> 'count_of_rows')::bigint
    END,
    country_codes = CASE jsonb_typeof(package::jsonb -> 'countryCode')
        WHEN 'string' THEN jsonb_build_array(upper(package::jsonb ->> 'countryCode'))::text
        WHEN 'array' THEN (
            SELECT jsonb_agg(DISTINCT upper(code #>> '{}'))::text
            FROM jsonb_array_elements(package::jsonb -> 'countryCode') AS code
            WHERE jsonb_typeof(code) = 'string'
        )
    END;
