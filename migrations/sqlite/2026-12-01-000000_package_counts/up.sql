-- What /package/stats counts, kept beside each record so counting never reads the descriptors: the
-- descriptor's count_of_rows, and its countryCode(s) upper-cased as a JSON array. Nullable, so a process of the
-- previous release keeps writing records meanwhile (its rows count as having neither).
ALTER TABLE packages ADD COLUMN count_of_rows BIGINT;
ALTER TABLE packages ADD COLUMN country_codes TEXT;
UPDATE packages SET
    count_of_rows = CASE
        WHEN json_type(package, '$.count_of_rows') = 'integer' AND json_extract(package, '$.count_of_rows') >= 0
        THEN json_extract(package, '$.count_of_rows')
    END,
    country_codes = CASE json_type(package, '$.countryCode')
        WHEN 'text' THEN json_array(upper(json_extract(package, '$.countryCode')))
        WHEN 'array' THEN (
            SELECT json_group_array(DISTINCT upper(value))
            FROM json_each(package, '$.countryCode')
            WHERE type = 'text'
        )
    END;
