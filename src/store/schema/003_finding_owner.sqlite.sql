-- Version 3: who owns the file a finding is in (`packages::Owner` as `dpkg:name version
-- (integrity)`), for the findings API and page; NULL for findings stored before it and for
-- files no package owns.
ALTER TABLE findings ADD COLUMN owner TEXT;
