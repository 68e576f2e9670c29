//! The prefixed-token families: a fake token of each format (random body,
//! real prefix, length and character set) is replaced, and by its own rule;
//! look-alikes (a character short, a character outside the set, the prefix
//! inside a longer word, the prefix alone in prose) pass unchanged.

use super::*;
use crate::signal::fields::FieldVisitor;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const DIGITS: &[u8] = b"0123456789";
/// Alphanumerics with `_` and `-`, the set of most URL-safe tokens.
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BECH32: &[u8] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

/// A piece of a token: a literal, or characters drawn from a set.
#[derive(Clone, Copy)]
enum Part {
    Lit(&'static str),
    Chars(&'static [u8], usize),
}
use Part::{Chars, Lit};

/// A token format, the rule that must replace it, and text that must pass.
struct Format {
    rule: &'static str,
    parts: &'static [Part],
    look_alikes: &'static [&'static str],
}

const FORMATS: &[Format] = &[
    Format {
        rule: "adobe_client_secret",
        parts: &[Lit("p8e-"), Chars(ALNUM, 32)],
        look_alikes: &["p8e-short", "the p8e-series adapter"],
    },
    Format {
        rule: "age_secret_key",
        parts: &[Lit("AGE-SECRET-KEY-1"), Chars(BECH32, 58)],
        look_alikes: &["AGE-SECRET-KEY-1 is the prefix of an age identity"],
    },
    Format {
        rule: "alibaba_access_key",
        parts: &[Lit("LTAI"), Chars(ALNUM, 20)],
        look_alikes: &["LTAI stands for nothing", "delta LTAIxyz"],
    },
    Format {
        rule: "anthropic_api_key",
        parts: &[Lit("sk-ant-api03-"), Chars(URLSAFE, 93), Lit("AA")],
        look_alikes: &["sk-ant-api03-tooShortAA", "sk-learn and sk-ant colonies"],
    },
    Format {
        rule: "anthropic_api_key",
        parts: &[Lit("sk-ant-admin01-"), Chars(URLSAFE, 93), Lit("AA")],
        look_alikes: &[],
    },
    Format {
        rule: "anthropic_api_key",
        parts: &[Lit("sk-ant-oat01-"), Chars(URLSAFE, 40)],
        look_alikes: &["sk-ant-oat01-tooShort"],
    },
    Format {
        rule: "artifactory_token",
        parts: &[Lit("AKCp"), Chars(ALNUM, 69)],
        look_alikes: &["AKCp is not a key"],
    },
    Format {
        rule: "artifactory_token",
        parts: &[Lit("cmVmd"), Chars(ALNUM, 59)],
        look_alikes: &[],
    },
    Format {
        rule: "atlassian_api_token",
        parts: &[Lit("ATATT3"), Chars(URLSAFE, 186)],
        look_alikes: &["ATATT3 alone"],
    },
    Format {
        rule: "authress_access_key",
        parts: &[
            Lit("sc_"),
            Chars(LOWER_ALNUM, 12),
            Lit("."),
            Chars(LOWER_ALNUM, 5),
            Lit(".acc_"),
            Chars(LOWER_ALNUM, 20),
            Lit("."),
            Chars(BASE64, 30),
        ],
        look_alikes: &["user.acc_id=42 and ext_backup.acc-file"],
    },
    Format {
        rule: "aws_access_key",
        parts: &[Lit("ACCA"), Chars(UPPER_ALNUM, 16)],
        look_alikes: &["ACCAdemy ACCA123"],
    },
    Format {
        rule: "azure_ad_client_secret",
        parts: &[
            Chars(ALNUM, 3),
            Chars(DIGITS, 1),
            Lit("Q~"),
            Chars(URLSAFE, 31),
        ],
        look_alikes: &["q~ is a tilde", "see 8Q~ notes", "abc8Q~short"],
    },
    Format {
        rule: "braintree_access_token",
        parts: &[Lit("access_token$production$"), Chars(LOWER_ALNUM, 16)],
        look_alikes: &["access_token$staging$abcdefgh12345678"],
    },
    Format {
        rule: "castai_api_key",
        parts: &[
            Lit("castai_v1_"),
            Chars(ALNUM, 64),
            Lit("_"),
            Chars(ALNUM, 8),
        ],
        look_alikes: &["castai_v1_api client"],
    },
    Format {
        rule: "chieftools_token",
        parts: &[Lit("ctp_"), Chars(ALNUM, 30)],
        look_alikes: &["ctr_clicks=12 cto_name=x"],
    },
    Format {
        rule: "clickhouse_api_key",
        parts: &[Lit("4b1d"), Chars(ALNUM, 38)],
        look_alikes: &["sha1 4b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"],
    },
    Format {
        rule: "clojars_token",
        parts: &[Lit("CLOJARS_"), Chars(HEX, 60)],
        look_alikes: &["CLOJARS_USERNAME=bob"],
    },
    Format {
        rule: "cloudflare_origin_ca_key",
        parts: &[Lit("v1.0-"), Chars(HEX, 24), Lit("-"), Chars(HEX, 146)],
        look_alikes: &["upgraded to v1.0-beta.2"],
    },
    Format {
        rule: "databricks_token",
        parts: &[Lit("dapi"), Chars(HEX, 32)],
        look_alikes: &["dapi call failed", "dapi0123456789abcdef0123456789abcdeg"],
    },
    Format {
        rule: "defined_networking_token",
        parts: &[
            Lit("dnkey-"),
            Chars(URLSAFE, 26),
            Lit("-"),
            Chars(URLSAFE, 52),
        ],
        look_alikes: &["dnkey-missing"],
    },
    Format {
        rule: "digitalocean_token",
        parts: &[Lit("dop_v1_"), Chars(HEX, 64)],
        look_alikes: &["dop_v1_ARCHITECTURE"],
    },
    Format {
        rule: "digitalocean_token",
        parts: &[Lit("doo_v1_"), Chars(HEX, 64)],
        look_alikes: &[],
    },
    Format {
        rule: "digitalocean_token",
        parts: &[Lit("dor_v1_"), Chars(HEX, 64)],
        look_alikes: &[],
    },
    Format {
        rule: "docker_hub_token",
        parts: &[Lit("dckr_pat_"), Chars(URLSAFE, 27)],
        look_alikes: &["dckr_pat_ is how they start"],
    },
    Format {
        rule: "doppler_token",
        parts: &[Lit("dp.pt."), Chars(ALNUM, 43)],
        look_alikes: &["dp.pt.example.com"],
    },
    Format {
        rule: "duffel_token",
        parts: &[Lit("duffel_test_"), Chars(URLSAFE, 43)],
        look_alikes: &["duffel_test_mode=true"],
    },
    Format {
        rule: "dynatrace_token",
        parts: &[
            Lit("dt0c01."),
            Chars(UPPER_ALNUM, 24),
            Lit("."),
            Chars(UPPER_ALNUM, 64),
        ],
        look_alikes: &["dt0c01.short.x"],
    },
    Format {
        rule: "easypost_token",
        parts: &[Lit("EZAK"), Chars(ALNUM, 54)],
        look_alikes: &["EZAKIEL"],
    },
    Format {
        rule: "facebook_access_token",
        parts: &[Lit("EAAM"), Chars(ALNUM, 100)],
        look_alikes: &["EAAMazing"],
    },
    Format {
        rule: "flutterwave_key",
        parts: &[
            Lit("FLWSECK_TEST-"),
            Chars(b"abcdefgh0123456789", 32),
            Lit("-X"),
        ],
        look_alikes: &["FLWSECK_TEST-zzzzzzzzzzzz"],
    },
    Format {
        rule: "flutterwave_key",
        parts: &[Lit("FLWSECK_TEST-"), Chars(b"abcdefgh0123456789", 12)],
        look_alikes: &[],
    },
    Format {
        rule: "flyio_token",
        parts: &[Lit("fo1_"), Chars(URLSAFE, 43)],
        look_alikes: &["fo1_bar"],
    },
    Format {
        rule: "flyio_token",
        parts: &[Lit("fm2_"), Chars(BASE64, 100)],
        look_alikes: &["fm2_radio station"],
    },
    Format {
        rule: "frameio_token",
        parts: &[Lit("fio-u-"), Chars(URLSAFE, 64)],
        look_alikes: &["fio-u-turn"],
    },
    Format {
        rule: "gitlab_token",
        parts: &[Lit("glft-"), Chars(URLSAFE, 20)],
        look_alikes: &["glft-short"],
    },
    Format {
        rule: "gitlab_token",
        parts: &[Lit("GR1348941"), Chars(URLSAFE, 20)],
        look_alikes: &["GR1348941 is a prefix"],
    },
    Format {
        rule: "grafana_token",
        parts: &[Lit("glc_"), Chars(BASE64, 32)],
        look_alikes: &["glc_version=2", "the glc_ prefix"],
    },
    Format {
        rule: "grafana_token",
        parts: &[Lit("glsa_"), Chars(ALNUM, 32), Lit("_"), Chars(HEX, 8)],
        look_alikes: &[],
    },
    Format {
        rule: "grafana_token",
        parts: &[Lit("eyJrIjoi"), Chars(ALNUM, 70)],
        look_alikes: &[],
    },
    Format {
        rule: "groq_api_key",
        parts: &[Lit("gsk_"), Chars(ALNUM, 48)],
        look_alikes: &["gsk_thing"],
    },
    Format {
        rule: "harness_token",
        parts: &[
            Lit("pat."),
            Chars(URLSAFE, 22),
            Lit("."),
            Chars(ALNUM, 24),
            Lit("."),
            Chars(ALNUM, 20),
        ],
        look_alikes: &["see pat.txt and sat.json"],
    },
    Format {
        rule: "heroku_api_key",
        parts: &[Lit("HRKU-AA"), Chars(URLSAFE, 58)],
        look_alikes: &["HRKU-AA is the v2 prefix"],
    },
    Format {
        rule: "huggingface_token",
        parts: &[Lit("hf_"), Chars(LETTERS, 34)],
        look_alikes: &[
            "from huggingface_hub import hf_hub_download",
            "hf_transfer enabled",
        ],
    },
    Format {
        rule: "huggingface_token",
        parts: &[Lit("api_org_"), Chars(LETTERS, 34)],
        look_alikes: &["api_org_id=3"],
    },
    Format {
        rule: "infracost_token",
        parts: &[Lit("ico-"), Chars(ALNUM, 32)],
        look_alikes: &["ico-file favicon.ico-32"],
    },
    Format {
        rule: "intra42_client_secret",
        parts: &[Lit("s-s4t2ud-"), Chars(HEX, 64)],
        look_alikes: &["s-s4t2ud-x"],
    },
    Format {
        rule: "jwt_base64",
        // base64 of `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl`
        parts: &[Lit(
            "ZXlKaGJHY2lPaUpJVXpJMU5pSjkuZXlKemRXSWlPaUl4TWpNME5UWTNPRGt3SW4wLmMybG5ibUYwZFhKbA==",
        )],
        // base64 of `eyJ hello world, this is not a JWT at all`
        look_alikes: &["ZXlKIGhlbGxvIHdvcmxkLCB0aGlzIGlzIG5vdCBhIEpXVCBhdCBhbGw="],
    },
    Format {
        rule: "langsmith_api_key",
        parts: &[Lit("lsv2_pt_"), Chars(HEX, 32), Lit("_"), Chars(HEX, 10)],
        look_alikes: &["lsv2_xx_0123456789abcdef0123456789abcdef_0123456789"],
    },
    Format {
        rule: "linear_api_key",
        parts: &[Lit("lin_api_"), Chars(ALNUM, 40)],
        look_alikes: &["lin_api_version=3"],
    },
    Format {
        rule: "maxmind_license_key",
        parts: &[Chars(ALNUM, 6), Lit("_"), Chars(ALNUM, 29), Lit("_mmk")],
        look_alikes: &["geo_mmk_x"],
    },
    Format {
        rule: "new_relic_key",
        parts: &[Lit("NRAK-"), Chars(UPPER_ALNUM, 27)],
        look_alikes: &["NRAK-TOOSHORT"],
    },
    Format {
        rule: "new_relic_key",
        parts: &[Lit("NRJS-"), Chars(HEX, 19)],
        look_alikes: &[],
    },
    Format {
        rule: "notion_token",
        parts: &[Lit("ntn_"), Chars(DIGITS, 11), Chars(ALNUM, 35)],
        look_alikes: &["ntn_sync job"],
    },
    Format {
        rule: "npm_token",
        parts: &[Lit("npm_"), Chars(ALNUM, 36)],
        look_alikes: &[
            "npm_config_cache=/root/.npm",
            "npm_lifecycle_event=build npm_package_version=1.2.3",
        ],
    },
    Format {
        rule: "nuget_api_key",
        parts: &[Lit("oy2"), Chars(LOWER_ALNUM, 43)],
        look_alikes: &["boy2 and oy2k"],
    },
    Format {
        rule: "onepassword_token",
        parts: &[
            Lit("A3-"),
            Chars(UPPER_ALNUM, 6),
            Lit("-"),
            Chars(UPPER_ALNUM, 11),
            Lit("-"),
            Chars(UPPER_ALNUM, 5),
            Lit("-"),
            Chars(UPPER_ALNUM, 5),
            Lit("-"),
            Chars(UPPER_ALNUM, 5),
        ],
        look_alikes: &["paper size A3-landscape", "id 4a3-00ff"],
    },
    Format {
        rule: "onepassword_token",
        parts: &[Lit("ops_eyJ"), Chars(BASE64, 250)],
        look_alikes: &["ops_eyJ"],
    },
    Format {
        rule: "openai_api_key",
        parts: &[
            Lit("sk-proj-"),
            Chars(URLSAFE, 74),
            Lit("T3BlbkFJ"),
            Chars(URLSAFE, 58),
        ],
        look_alikes: &["sk-learn and sk-proj-tools", "T3BlbkFJ on its own"],
    },
    Format {
        rule: "openai_api_key",
        parts: &[
            Lit("sk-"),
            Chars(ALNUM, 20),
            Lit("T3BlbkFJ"),
            Chars(ALNUM, 20),
        ],
        look_alikes: &[],
    },
    Format {
        rule: "openshift_token",
        parts: &[Lit("sha256~"), Chars(URLSAFE, 43)],
        look_alikes: &["sha256~abc"],
    },
    Format {
        rule: "perplexity_api_key",
        parts: &[Lit("pplx-"), Chars(ALNUM, 48)],
        look_alikes: &["pplx-api"],
    },
    Format {
        rule: "planetscale_token",
        parts: &[Lit("pscale_tkn_"), Chars(URLSAFE, 32)],
        look_alikes: &["pscale_tkn_short"],
    },
    Format {
        rule: "postman_api_key",
        parts: &[Lit("PMAK-"), Chars(HEX, 24), Lit("-"), Chars(HEX, 34)],
        look_alikes: &["PMAK-missing"],
    },
    Format {
        rule: "prefect_api_key",
        parts: &[Lit("pnu_"), Chars(ALNUM, 36)],
        look_alikes: &["pnu_x"],
    },
    Format {
        rule: "pulumi_token",
        parts: &[Lit("pul-"), Chars(HEX, 40)],
        look_alikes: &["image pul-l failed", "pull-request 12"],
    },
    Format {
        rule: "pypi_token",
        parts: &[Lit("pypi-AgEIcHlwaS5vcmc"), Chars(URLSAFE, 50)],
        look_alikes: &["pypi-AgEIcHlwaS5vcmc", "pypi-simple index"],
    },
    Format {
        rule: "readme_api_key",
        parts: &[Lit("rdme_"), Chars(LOWER_ALNUM, 70)],
        look_alikes: &["rdme_sync"],
    },
    Format {
        rule: "rubygems_api_key",
        parts: &[Lit("rubygems_"), Chars(HEX, 48)],
        look_alikes: &["rubygems_version=3.5.0"],
    },
    Format {
        rule: "scalingo_token",
        parts: &[Lit("tk-us-"), Chars(URLSAFE, 48)],
        look_alikes: &["tk-us-east"],
    },
    Format {
        rule: "sendgrid_api_key",
        parts: &[Lit("SG."), Chars(URLSAFE, 22), Lit("."), Chars(URLSAFE, 43)],
        look_alikes: &["SG.1 release", "msg.SG.x"],
    },
    Format {
        rule: "sendinblue_api_key",
        parts: &[Lit("xkeysib-"), Chars(HEX, 64), Lit("-"), Chars(ALNUM, 16)],
        look_alikes: &["xkeysib-none"],
    },
    Format {
        rule: "sentry_token",
        parts: &[Lit("sntryu_"), Chars(HEX, 64)],
        look_alikes: &["sntryu_"],
    },
    Format {
        rule: "sentry_token",
        parts: &[
            Lit("sntrys_eyJpYXQiO"),
            Chars(BASE64, 60),
            Lit("_"),
            Chars(BASE64, 43),
        ],
        look_alikes: &[],
    },
    Format {
        rule: "settlemint_token",
        parts: &[Lit("sm_aat_"), Chars(ALNUM, 16)],
        look_alikes: &["sm_aat_x"],
    },
    Format {
        rule: "shippo_api_token",
        parts: &[Lit("shippo_live_"), Chars(HEX, 40)],
        look_alikes: &["shippo_live_mode"],
    },
    Format {
        rule: "shopify_token",
        parts: &[Lit("shpat_"), Chars(HEX, 32)],
        look_alikes: &["shpat_0123456789abcdef0123456789abcdeg"],
    },
    Format {
        rule: "shopify_token",
        parts: &[Lit("shpss_"), Chars(HEX, 32)],
        look_alikes: &[],
    },
    Format {
        rule: "sourcegraph_token",
        parts: &[Lit("sgp_"), Chars(HEX, 16), Lit("_"), Chars(HEX, 40)],
        look_alikes: &["sgp_local"],
    },
    Format {
        rule: "square_token",
        parts: &[Lit("sq0atp-"), Chars(URLSAFE, 22)],
        look_alikes: &["sq0atp-x"],
    },
    Format {
        rule: "terraform_cloud_token",
        parts: &[Chars(ALNUM, 14), Lit(".atlasv1."), Chars(URLSAFE, 60)],
        look_alikes: &["app.atlasv1.example"],
    },
    Format {
        rule: "typeform_token",
        parts: &[Lit("tfp_"), Chars(URLSAFE, 59)],
        look_alikes: &["tfp_form"],
    },
    Format {
        rule: "vault_token",
        parts: &[Lit("hvs."), Chars(URLSAFE, 90)],
        look_alikes: &["hvs.example.com", "s.abcdefghijklmnopqrstuvwx"],
    },
    Format {
        rule: "vault_token",
        parts: &[Lit("hvb."), Chars(URLSAFE, 138)],
        look_alikes: &[],
    },
    Format {
        rule: "yandex_api_key",
        parts: &[Lit("AQVN"), Chars(URLSAFE, 35)],
        look_alikes: &["AQVN alone"],
    },
];

/// Formats whose rule takes bodies of any length past a minimum (GitLab's,
/// Slack's, Stripe's, Square's `EAAA` tokens, Teams webhooks): one character
/// short is still a token, so only their fixed look-alikes are tried.
const LOOSE_FORMATS: &[Format] = &[
    Format {
        rule: "gitlab_token",
        parts: &[Lit("glagent-"), Chars(URLSAFE, 50)],
        look_alikes: &[],
    },
    Format {
        rule: "slack_token",
        parts: &[
            Lit("xapp-1-"),
            Chars(UPPER_ALNUM, 11),
            Lit("-"),
            Chars(DIGITS, 13),
        ],
        look_alikes: &["xapp-store"],
    },
    Format {
        rule: "square_token",
        parts: &[Lit("EAAA"), Chars(URLSAFE, 60)],
        look_alikes: &[],
    },
    Format {
        rule: "stripe_key",
        parts: &[Lit("rk_prod_"), Chars(ALNUM, 24)],
        look_alikes: &["work_prod_db"],
    },
    Format {
        rule: "teams_webhook",
        parts: &[
            Lit("https://contoso.webhook.office.com/webhookb2/"),
            Chars(HEX, 8),
            Lit("-1111-2222-3333-"),
            Chars(HEX, 12),
            Lit("@"),
            Chars(HEX, 8),
            Lit("-4444-5555-6666-"),
            Chars(HEX, 12),
            Lit("/IncomingWebhook/"),
            Chars(HEX, 32),
            Lit("/"),
            Chars(HEX, 8),
        ],
        look_alikes: &["see https://contoso.webhook.office.com/ for help"],
    },
];

/// Twilio's API key SIDs (`SK` + 32 hex digits) count only where the text
/// names Twilio.
#[test]
fn twilio_sids_are_replaced_only_where_the_text_names_twilio() {
    let r = default();
    let sid = "SK0123456789abcdef0123456789abcdef";
    assert_eq!(
        text(&r, &format!("twilio client ready, key {sid}")),
        "twilio client ready, key [REDACTED]"
    );
    assert_eq!(text(&r, &format!("Twilio: {sid}")), "Twilio: [REDACTED]");
    let elsewhere = format!("object {sid} stored");
    assert_eq!(text(&r, &elsewhere), elsewhere);
    let short = "twilio key SK0123456789abcdef";
    assert_eq!(text(&r, short), short);
}

fn make(rng: &mut fastrand::Rng, parts: &[Part], short_by: usize) -> String {
    let last = parts.iter().rposition(|p| matches!(p, Chars(..)));
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        match *part {
            Lit(text) => out.push_str(text),
            Chars(set, n) => {
                let n = if Some(i) == last { n - short_by } else { n };
                out.extend((0..n).map(|_| char::from(set[rng.usize(..set.len())])));
            }
        }
    }
    out
}

/// The text after redaction and how many replacements each rule made.
fn redact_counting(r: &Redactor, input: &str) -> (String, Vec<u64>) {
    let mut open_keys = OpenKeys::default();
    let mut pass = Pass::new(r, &mut open_keys);
    let out = if pass.may_change(input.as_bytes()) {
        pass.text(input).unwrap_or_else(|| input.to_string())
    } else {
        input.to_string()
    };
    (out, pass.hits)
}

#[test]
fn every_token_family_is_replaced_by_its_own_rule_in_context() {
    let r = default();
    let mut rng = fastrand::Rng::with_seed(42);
    for format in FORMATS.iter().chain(LOOSE_FORMATS) {
        let rule = r
            .names
            .iter()
            .position(|n| n == format.rule)
            .unwrap_or_else(|| panic!("no rule {}", format.rule));
        for _ in 0..20 {
            let token = make(&mut rng, format.parts, 0);
            for (input, expected) in [
                (token.clone(), "[REDACTED]".to_string()),
                (
                    format!("pushed with {token} to the registry"),
                    "pushed with [REDACTED] to the registry".to_string(),
                ),
                (
                    format!("cfg=('{token}', 3)"),
                    "cfg=('[REDACTED]', 3)".to_string(),
                ),
                (format!("{token}\tnext"), "[REDACTED]\tnext".to_string()),
            ] {
                let (out, hits) = redact_counting(&r, &input);
                assert_eq!(out, expected, "{}: {input}", format.rule);
                assert_eq!(hits[rule], 1, "{}: {input}", format.rule);
                assert_eq!(hits.iter().sum::<u64>(), 1, "{}: {input}", format.rule);
            }
        }
    }
}

#[test]
fn token_look_alikes_pass_unchanged() {
    let r = default();
    let mut rng = fastrand::Rng::with_seed(7);
    for format in LOOSE_FORMATS {
        for input in format.look_alikes {
            assert_eq!(text(&r, input), *input, "{}", format.rule);
        }
    }
    for format in FORMATS {
        // Fixed forms: a literal token has no shorter variant.
        let generated = format.parts.iter().any(|p| matches!(p, Chars(..)));
        let mut inputs: Vec<String> = format.look_alikes.iter().map(|s| s.to_string()).collect();
        if generated {
            for _ in 0..20 {
                let token = make(&mut rng, format.parts, 0);
                // A character short.
                inputs.push(format!("got {} here", make(&mut rng, format.parts, 1)));
                // Inside a longer word.
                inputs.push(format!("x{token}"));
            }
        }
        for input in inputs {
            assert_eq!(text(&r, &input), input, "{}", format.rule);
        }
    }
}
