ALTER TABLE packages DROP COLUMN country_codes;
ALTER TABLE packages DROP COLUMN count_of_rows;
