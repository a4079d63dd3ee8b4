-- The hub's TLS private key lives outside the database, in the hub's state directory
-- (`tls-key.pem`, mode 0600): whoever reads this database or a backup of it must not be able
-- to impersonate the hub that every node pins. `stayos-hub migrate --state-dir DIR` (or the
-- first `serve` with one) moves a key an older hub stored here (`hub_meta.tls_key_pem`) into
-- that file and deletes it. From this migration on, no private key can be written back: an
-- older hub binary still running against this database fails loudly instead of storing a
-- fresh key in clear.
CREATE FUNCTION hub_meta_refuse_private_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.key = 'tls_key_pem' OR position('PRIVATE KEY'::bytea IN NEW.value) > 0 THEN
        RAISE EXCEPTION 'hub_meta never holds a private key (key %): the hub keeps its TLS key in its state directory', NEW.key
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER hub_meta_no_private_keys
    BEFORE INSERT OR UPDATE ON hub_meta
    FOR EACH ROW EXECUTE FUNCTION hub_meta_refuse_private_keys();
