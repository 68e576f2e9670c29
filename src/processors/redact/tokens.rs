//! Prefixed tokens: credentials that services issue with a literal prefix
//! of their own (`npm_…`, `hvs.…`, `dop_v1_…`), so that they can be told
//! from other text by their shape alone.
//!
//! The families are those of gitleaks' default rules
//! (`config/gitleaks.toml`) whose match is anchored by such a prefix, with
//! the prefixes, lengths and character sets recorded there; a few that its
//! rule sources gained since (Anthropic's OAuth tokens, Groq, LangSmith,
//! CAST AI, Chief Tools, Braintree); and Docker Hub's `dckr_…` and NuGet's
//! `oy2…`, which it does not have. The patterns are written here. Where
//! gitleaks only finds a token near the service's name (`heroku … <uuid>`),
//! or the prefix is too common a string to anchor on (`API-`, `s.`), the
//! family is not here: `secret_pairs` finds such a token after a
//! secret-named key. Checksums are not checked (GitHub's tokens end in a
//! CRC32 of the rest, and npm's are said to follow the same design, but
//! neither is documented well enough to refuse a token on it): lengths and
//! character sets are.
//!
//! A token whose last character may be `-` cannot end on `\b`; those
//! patterns read the character after the token (or the end of the text)
//! and replace group 1.

use super::rules::{Builtin, Kind, Matcher, any, base64_decode};

/// A token replaced whole.
const fn token(
    name: &'static str,
    anchors: &'static [&'static str],
    pattern: &'static str,
) -> Builtin {
    with_group(name, anchors, pattern, 0, any)
}

/// A token that is group 1 of its pattern.
const fn bounded(
    name: &'static str,
    anchors: &'static [&'static str],
    pattern: &'static str,
) -> Builtin {
    with_group(name, anchors, pattern, 1, any)
}

const fn with_group(
    name: &'static str,
    anchors: &'static [&'static str],
    pattern: &'static str,
    group: usize,
    accept: fn(&str) -> bool,
) -> Builtin {
    Builtin {
        name,
        kind: Kind::Secret,
        anchors,
        matcher: Matcher::Regex {
            pattern,
            group,
            accept,
        },
    }
}

/// Azure AD client secrets carry `Q~` after three characters and a digit:
/// the digit is part of each anchor, as two bytes are too short to search.
const AZURE_AD_ANCHORS: &[&str] = &[
    "0q~", "1q~", "2q~", "3q~", "4q~", "5q~", "6q~", "7q~", "8q~", "9q~",
];

/// The prefixed-token families, by service.
pub const FAMILIES: &[Builtin] = &[
    token("adobe_client_secret", &["p8e-"], r"\bp8e-[A-Za-z0-9]{32}\b"),
    token(
        "age_secret_key",
        &["age-secret-key-1"],
        r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b",
    ),
    token("alibaba_access_key", &["ltai"], r"\bLTAI[A-Za-z0-9]{20}\b"),
    // API keys (api03), admin keys (admin01), OAuth access and refresh
    // tokens (oat01, ort01).
    bounded(
        "anthropic_api_key",
        &["sk-ant-"],
        r"\b(sk-ant-(?:(?:api03|admin01)-[A-Za-z0-9_-]{93}AA|(?:oat01|ort01)-[A-Za-z0-9_-]{40,}))(?:[^A-Za-z0-9_-]|$)",
    ),
    token(
        "artifactory_token",
        &["akcp", "cmvmd"],
        r"\b(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})\b",
    ),
    bounded(
        "atlassian_api_token",
        &["atatt3"],
        r"\b(ATATT3[A-Za-z0-9_=-]{186})(?:[^A-Za-z0-9_=-]|$)",
    ),
    token(
        "authress_access_key",
        &[".acc_", ".acc-"],
        r"\b(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][A-Za-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120}",
    ),
    bounded(
        "azure_ad_client_secret",
        AZURE_AD_ANCHORS,
        r#"(?:^|[\s"'`=:(,>])([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:$|[\s"'`<),;&])"#,
    ),
    token(
        "braintree_access_token",
        &["token$production$", "token$sandbox$"],
        r"\baccess_token\$(?:production|sandbox)\$[a-z0-9]{16}(?:\$[a-f0-9]{32})?\b",
    ),
    token(
        "castai_api_key",
        &["castai_v1_"],
        r"\bcastai_v1_[A-Za-z0-9]{64}_[A-Za-z0-9]{8}\b",
    ),
    token(
        "chieftools_token",
        &["ctp_", "cto_", "ctr_"],
        r"\bct[opr]_[A-Za-z0-9]{30,248}\b",
    ),
    token("clickhouse_api_key", &["4b1d"], r"\b4b1d[A-Za-z0-9]{38}\b"),
    token(
        "clojars_token",
        &["clojars_"],
        r"\b(?i:CLOJARS_)[A-Za-z0-9]{60}\b",
    ),
    token(
        "cloudflare_origin_ca_key",
        &["v1.0-"],
        r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}\b",
    ),
    token(
        "databricks_token",
        &["dapi"],
        r"\bdapi[a-f0-9]{32}(?:-[0-9])?\b",
    ),
    token(
        "defined_networking_token",
        &["dnkey-"],
        r"\bdnkey-[A-Za-z0-9=_-]{26}-[A-Za-z0-9=_-]{52}\b",
    ),
    // Personal (dop), OAuth (doo) and refresh (dor) tokens.
    token(
        "digitalocean_token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"\bdo[opr]_v1_[a-f0-9]{64}\b",
    ),
    // Personal and organization access tokens.
    bounded(
        "docker_hub_token",
        &["dckr_"],
        r"\b(dckr_(?:pat|oat)_[A-Za-z0-9_-]{27})(?:[^A-Za-z0-9_-]|$)",
    ),
    token("doppler_token", &["dp.pt."], r"\bdp\.pt\.[A-Za-z0-9]{43}\b"),
    bounded(
        "duffel_token",
        &["duffel_"],
        r"\b(duffel_(?:test|live)_[A-Za-z0-9_=-]{43})(?:[^A-Za-z0-9_=-]|$)",
    ),
    token(
        "dynatrace_token",
        &["dt0c01."],
        r"\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}\b",
    ),
    token(
        "easypost_token",
        &["ezak", "eztk"],
        r"\bEZ[AT]K[A-Za-z0-9]{54}\b",
    ),
    // Page and app tokens (EAAM, EAAC); `EAAA` is Square's.
    token(
        "facebook_access_token",
        &["eaam", "eaac"],
        r"\bEAA[MC][A-Za-z0-9]{100,}\b",
    ),
    // Test-mode secret and public keys, and the encryption key.
    token(
        "flutterwave_key",
        &["flwseck", "flwpubk"],
        r"\bFLW(?:SECK|PUBK)_TEST-(?:[a-hA-H0-9]{32}-X|[a-hA-H0-9]{12})\b",
    ),
    bounded(
        "flyio_token",
        &["fo1_", "fm1a_", "fm1r_", "fm2_"],
        r"\b(fo1_[A-Za-z0-9_-]{43}|fm(?:1[ar]|2)_[A-Za-z0-9+/]{100,}={0,3})(?:[^A-Za-z0-9_+/=-]|$)",
    ),
    bounded(
        "frameio_token",
        &["fio-u-"],
        r"\b(fio-u-[A-Za-z0-9_=-]{64})(?:[^A-Za-z0-9_=-]|$)",
    ),
    // Cloud access policies (glc_), service accounts (glsa_), and the older
    // API keys, base64 of `{"k":"`.
    token(
        "grafana_token",
        &["glc_", "glsa_", "eyjrijoi"],
        r"\b(?:glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b|eyJrIjoi[A-Za-z0-9]{70,400}={0,3})",
    ),
    token("groq_api_key", &["gsk_"], r"\bgsk_[A-Za-z0-9]{48}\b"),
    token(
        "harness_token",
        &["pat.", "sat."],
        r"\b(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}\b",
    ),
    bounded(
        "heroku_api_key",
        &["hrku-aa"],
        r"\b(HRKU-AA[A-Za-z0-9_-]{58})(?:[^A-Za-z0-9_-]|$)",
    ),
    // User access tokens and organization API tokens.
    token(
        "huggingface_token",
        &["hf_", "api_org_"],
        r"\b(?:hf|api_org)_[A-Za-z]{34}\b",
    ),
    token("infracost_token", &["ico-"], r"\bico-[A-Za-z0-9]{32}\b"),
    token(
        "intra42_client_secret",
        &["s-s4t2ud-", "s-s4t2af-"],
        r"\bs-s4t2(?:ud|af)-[a-f0-9]{64}\b",
    ),
    with_group(
        "jwt_base64",
        &["zxlk"],
        r"\bZXlK[A-Za-z0-9+/]{40,}={0,2}",
        0,
        is_base64_jwt,
    ),
    token(
        "langsmith_api_key",
        &["lsv2_pt_", "lsv2_sk_"],
        r"\blsv2_(?:pt|sk)_[a-z0-9]{32}_[a-z0-9]{10}\b",
    ),
    token(
        "linear_api_key",
        &["lin_api_"],
        r"\blin_api_[A-Za-z0-9]{40}\b",
    ),
    token(
        "maxmind_license_key",
        &["_mmk"],
        r"\b[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk\b",
    ),
    // User API keys (NRAK), insert keys (NRII), browser keys (NRJS).
    token(
        "new_relic_key",
        &["nrak-", "nrii-", "nrjs-"],
        r"\b(?:NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9-]{32}|NRJS-[a-f0-9]{19})\b",
    ),
    token(
        "notion_token",
        &["ntn_"],
        r"\bntn_[0-9]{11}[A-Za-z0-9]{35}\b",
    ),
    token("npm_token", &["npm_"], r"\bnpm_[A-Za-z0-9]{36}\b"),
    token("nuget_api_key", &["oy2"], r"\boy2[a-z0-9]{43}\b"),
    // The account's secret key (A3-…) and service account tokens.
    token(
        "onepassword_token",
        &["a3-", "ops_eyj"],
        r"\b(?:A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b|ops_eyJ[A-Za-z0-9+/]{250,}={0,3})",
    ),
    // Every OpenAI key holds `T3BlbkFJ` (base64 of "OpenAI") in the middle:
    // project, service account and admin keys, and the older user keys.
    token(
        "openai_api_key",
        &["t3blbkfj"],
        r"\bsk-(?:(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})\b",
    ),
    bounded(
        "openshift_token",
        &["sha256~"],
        r"\b(sha256~[A-Za-z0-9_-]{43})(?:[^A-Za-z0-9_-]|$)",
    ),
    token(
        "perplexity_api_key",
        &["pplx-"],
        r"\bpplx-[A-Za-z0-9]{48}\b",
    ),
    // API tokens, OAuth tokens and passwords.
    bounded(
        "planetscale_token",
        &["pscale_"],
        r"\b(pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,64})(?:[^A-Za-z0-9_=.-]|$)",
    ),
    token(
        "postman_api_key",
        &["pmak-"],
        r"\bPMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}\b",
    ),
    token("prefect_api_key", &["pnu_"], r"\bpnu_[A-Za-z0-9]{36}\b"),
    token("pulumi_token", &["pul-"], r"\bpul-[a-f0-9]{40}\b"),
    // Upload tokens are macaroons whose first bytes name pypi.org.
    token(
        "pypi_token",
        &["pypi-ageichlwas5vcmc"],
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
    ),
    token("readme_api_key", &["rdme_"], r"\brdme_[a-z0-9]{70}\b"),
    token(
        "rubygems_api_key",
        &["rubygems_"],
        r"\brubygems_[a-f0-9]{48}\b",
    ),
    bounded(
        "scalingo_token",
        &["tk-us-"],
        r"\b(tk-us-[A-Za-z0-9_-]{48})(?:[^A-Za-z0-9_-]|$)",
    ),
    bounded(
        "sendgrid_api_key",
        &["sg."],
        r"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?:[^A-Za-z0-9_-]|$)",
    ),
    token(
        "sendinblue_api_key",
        &["xkeysib-"],
        r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b",
    ),
    // Organization tokens (base64 JSON claims, `_`, a signature) and user
    // tokens.
    token(
        "sentry_token",
        &["sntrys_", "sntryu_"],
        r"\b(?:sntrys_eyJpYXQiO[A-Za-z0-9+/=]{10,}_[A-Za-z0-9+/]{43}|sntryu_[a-f0-9]{64}\b)",
    ),
    token(
        "settlemint_token",
        &["sm_aat_", "sm_pat_", "sm_sat_"],
        r"\bsm_(?:aat|pat|sat)_[A-Za-z0-9]{16}\b",
    ),
    token(
        "shippo_api_token",
        &["shippo_"],
        r"\bshippo_(?:live|test)_[a-fA-F0-9]{40}\b",
    ),
    // Admin API, custom app, private app tokens and shared secrets.
    token(
        "shopify_token",
        &["shpat_", "shpca_", "shppa_", "shpss_"],
        r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
    ),
    token(
        "sourcegraph_token",
        &["sgp_"],
        r"\bsgp_(?:(?:[a-fA-F0-9]{16}|local)_)?[a-fA-F0-9]{40}\b",
    ),
    // Access tokens (EAAA…, sq0atp-) and OAuth application secrets.
    bounded(
        "square_token",
        &["eaaa", "sq0atp-", "sq0csp-"],
        r"\b((?:EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_-]{22,60})(?:[^A-Za-z0-9_-]|$)",
    ),
    // Incoming webhook URLs of Microsoft Teams connectors.
    token(
        "teams_webhook",
        &["webhook.office.com"],
        r"\bhttps://[A-Za-z0-9.-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/-]+/IncomingWebhook/[A-Za-z0-9/-]+",
    ),
    // User and team tokens: a 14-character id, `.atlasv1.`, the secret.
    bounded(
        "terraform_cloud_token",
        &[".atlasv1."],
        r"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})(?:[^A-Za-z0-9_=-]|$)",
    ),
    // `SK` and 32 hex digits is an API key's SID; on its own it is too
    // common a shape (any `SK…` hash), so only where the text names Twilio.
    token("twilio_api_key", &["twilio"], r"\bSK[0-9a-fA-F]{32}\b"),
    bounded(
        "typeform_token",
        &["tfp_"],
        r"\b(tfp_[A-Za-z0-9_.=-]{59})(?:[^A-Za-z0-9_.=-]|$)",
    ),
    // Service (hvs.) and batch (hvb.) tokens; the older `s.` + 24 is not
    // told from other text by its shape.
    bounded(
        "vault_token",
        &["hvs.", "hvb."],
        r"\b(hvs\.[A-Za-z0-9_-]{90,120}|hvb\.[A-Za-z0-9_-]{138,300})(?:[^A-Za-z0-9_-]|$)",
    ),
    bounded(
        "yandex_api_key",
        &["aqvn"],
        r"\b(AQVN[A-Za-z0-9_-]{35,38})(?:[^A-Za-z0-9_-]|$)",
    ),
];

/// `ZXlK…` is base64 of `eyJ…`: a token counts when it decodes to a JWT.
fn is_base64_jwt(text: &str) -> bool {
    base64_decode(text).is_some_and(|decoded| {
        decoded.starts_with(b"eyJ") && decoded.windows(4).any(|w| w == b".eyJ")
    })
}
