//! The diesel schema, one for both backends: the migrations keep their column types portable.

diesel::table! {
    users (idhash) {
        idhash -> Text,
        provider_id -> Text,
        name -> Text,
        email -> Text,
        avatar_url -> Nullable<Text>,
        username -> Nullable<Text>,
        join_date -> BigInt,
    }
}

diesel::table! {
    permissions (userid, service) {
        userid -> Text,
        service -> Text,
        #[sql_name = "permissions"]
        granted -> Text,
    }
}

diesel::table! {
    packages (id) {
        id -> Text,
        owner -> Text,
        model -> Text,
        package -> Text,
        origin_url -> Text,
        dataset -> Nullable<Text>,
        author -> Nullable<Text>,
        loading_status -> Nullable<Text>,
        loaded -> Bool,
        last_update -> BigInt,
        count_of_rows -> Nullable<BigInt>,
        country_codes -> Nullable<Text>,
    }
}

diesel::table! {
    load_jobs (id) {
        id -> BigInt,
        package_id -> Text,
        datapackage_url -> Text,
        owner -> Text,
        status -> Text,
        rows_loaded -> BigInt,
        rows_total -> Nullable<BigInt>,
        error -> Nullable<Text>,
        heartbeat_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    login_states (state) {
        state -> Text,
        provider -> Text,
        pkce_verifier -> Text,
        nonce -> Text,
        next_url -> Text,
        browser_binding -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    search_outbox (id) {
        id -> BigInt,
        package_id -> Text,
        created_at -> BigInt,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        owner -> Text,
        name -> Text,
        scope -> Text,
        secret_hash -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
    }
}
