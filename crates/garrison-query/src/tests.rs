//! Tests through data: one-line cases of query, device and expected result, each also checked
//! for a canonical form that parses back to an equal query with the same result.

use std::collections::HashMap;
use std::time::Instant;

use crate::{FieldId, FieldKind, FieldSpec, Query, Schema, Subject, Value};

fn schema() -> Schema {
    let field = |name, kind, keyed| FieldSpec {
        name,
        kind,
        keyed,
        doc: "",
    };
    Schema::new(vec![
        field("model", FieldKind::Text, false),
        field("firmware", FieldKind::Version, false),
        field("port", FieldKind::Number, false),
        field("online", FieldKind::Bool, false),
        field("tag", FieldKind::Text, true),
        field("group", FieldKind::Text, false),
        field("package", FieldKind::Version, true),
        field("finding", FieldKind::Bool, true),
        field("cpu", FieldKind::Number, false),
        field("serial", FieldKind::Text, false),
        field("hostName", FieldKind::Text, false),
    ])
}

enum Owned {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// A device: field id → key (`""` for unkeyed fields) → values.
#[derive(Default)]
struct Device {
    fields: HashMap<u16, HashMap<String, Vec<Owned>>>,
}

impl Subject for Device {
    fn any_value(
        &self,
        field: FieldId,
        key: Option<&str>,
        f: &mut dyn FnMut(Value<'_>) -> bool,
    ) -> bool {
        let Some(values) = self
            .fields
            .get(&field.0)
            .and_then(|keys| keys.get(key.unwrap_or("")))
        else {
            return false;
        };
        values.iter().any(|value| {
            f(match value {
                Owned::Text(text) => Value::Text(text),
                Owned::Number(number) => Value::Number(*number),
                Owned::Bool(flag) => Value::Bool(*flag),
            })
        })
    }
}

/// A device from `field[:key]=value` words; repeating a field adds values.
fn device(spec: &str) -> Device {
    let schema = schema();
    let mut device = Device::default();
    for word in spec.split_whitespace() {
        let (field, value) = word.split_once('=').unwrap();
        let (name, key) = field.split_once(':').unwrap_or((field, ""));
        let (id, field) = schema.lookup(name).unwrap();
        let value = match field.kind {
            FieldKind::Text | FieldKind::Version => Owned::Text(value.to_owned()),
            FieldKind::Number => Owned::Number(value.parse().unwrap()),
            FieldKind::Bool => Owned::Bool(value.parse().unwrap()),
        };
        device
            .fields
            .entry(id.0)
            .or_default()
            .entry(key.to_owned())
            .or_default()
            .push(value);
    }
    device
}

fn cam() -> Device {
    device(
        "model=cam-x firmware=2.0.3 port=22 port=443 online=true tag:site=berlin tag:owner=ops \
         group=lobby group=north package:openssl=1.1.1w package:busybox=1.36.1 \
         finding:ssh-password-auth=true cpu=71.5 serial=SN-0042 hostName=Cam-Lobby-01",
    )
}

fn gateway() -> Device {
    device(
        "model=gw-200 firmware=v2.10.1 port=80 online=false tag:site=Berlin group=core cpu=40 \
         finding:ssh-password-auth=false",
    )
}

/// A device about which nothing is known.
fn bare() -> Device {
    Device::default()
}

#[track_caller]
fn check(text: &str, device: &Device, expected: bool) {
    let schema = schema();
    let query = Query::parse(text, &schema).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(query.text(), text);
    let canonical = query.to_canonical();
    assert_eq!(
        query.matches(device),
        expected,
        "{text:?} (canonical {canonical:?})"
    );
    let again = Query::parse(&canonical, &schema)
        .unwrap_or_else(|e| panic!("canonical {canonical:?} of {text:?}: {e}"));
    assert_eq!(again, query, "canonical {canonical:?} of {text:?}");
    assert_eq!(
        again.to_canonical(),
        canonical,
        "canonical form is not stable"
    );
    assert_eq!(again.matches(device), expected, "canonical {canonical:?}");
}

#[track_caller]
fn check_canonical(text: &str, expected: &str) {
    let query = Query::parse(text, &schema()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(query.to_canonical(), expected, "{text:?}");
}

#[track_caller]
fn check_err(text: &str, expected: &str) {
    match Query::parse(text, &schema()) {
        Ok(query) => panic!("{text:?} parsed as {:?}", query.to_canonical()),
        Err(error) => assert_eq!(error.to_string(), expected, "{text:?}"),
    }
}

#[test]
fn text_comparisons() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("model = cam-x", cam, true);
    check("model = cam-x", gw, false);
    check("model = cam-x", bare, false);
    check("model = \"cam-x\"", cam, true);
    check("model=cam-x", cam, true);
    check("model = CAM-X", cam, false);
    check("model != cam-x", cam, false);
    check("model != cam-x", gw, true);
    check("model != cam-x", bare, true);
    check("model < d", cam, true);
    check("model < d", gw, false);
    check("model >= gw", gw, true);
    check("model >= gw", cam, false);
    check("model <= cam-x", cam, true);
    check("model > cam-x", cam, false);
    check("model > cam", cam, true);
    check("model < d", bare, false);
    check("serial = SN-0042", cam, true);
    check("model in (gw-200, cam-x)", cam, true);
    check("model in (gw-200, cam-y)", cam, false);
    check("model not in (gw-200, cam-y)", cam, true);
    check("model not in (gw-200)", gw, false);
    check("model = 123", cam, false);
    check("model = true", cam, false);
    check("model = \"and\"", cam, false);
    check("model != \"\"", cam, true);
}

#[test]
fn globs() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("model ~ cam-*", cam, true);
    check("model ~ cam-*", gw, false);
    check("model ~ CAM-*", cam, true);
    check("model ~ \"c?m-x\"", cam, true);
    check("model ~ cam", cam, false);
    check("model ~ *", cam, true);
    check("model ~ *", bare, false);
    check("hostName ~ *lobby*", cam, true);
    check("tag:site ~ BERLIN", cam, true);
    check("tag:site ~ BERLIN", gw, true);
    check("firmware ~ 2.0.*", cam, true);
    check("firmware ~ v2.*", gw, true);
    check("group ~ n*", cam, true);
    check("not model ~ cam*", gw, true);
}

#[test]
fn versions() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("firmware < 2.1", cam, true);
    check("firmware < 2.1", gw, false);
    check("firmware >= 2.1", gw, true);
    check("firmware > 2.9", gw, true);
    check("firmware < \"2.10\"", cam, true);
    check("firmware = 2.0.3", cam, true);
    check("firmware = v2.0.3.0", cam, true);
    check("firmware = 2.0", cam, false);
    check("firmware != 2.0.3.0", cam, false);
    check("firmware = 2.10.1", gw, true);
    check("firmware < 2.0.3-rc1", cam, false);
    check("firmware > 2.0.3-rc1", cam, true);
    check("firmware > \"2.0.3~rc1\"", cam, true);
    check("firmware < \"2.0.3~rc1\"", cam, false);
    check("firmware <= 2.0.3", cam, true);
    check("firmware in (2.0.3.0, 3)", cam, true);
    check("firmware not in (2.0.3.0, 3)", cam, false);
    check("firmware < 99", bare, false);
    check("firmware >= 0", bare, false);
    check("package:openssl < 1.1.1x", cam, true);
    check("package:openssl >= 1.1.1", cam, true);
    check("package:openssl > 1.1.1", cam, true);
    check("package:openssl < 1.1.2", cam, true);
    check("package:openssl = 1.1.1w", cam, true);
    check("package:busybox in (1.36.1, 1.35)", cam, true);
    check("package:curl < 99", cam, false);
    check("package:curl != 1.0", cam, true);
    check("firmware < 1:0.1", gw, true);
}

#[test]
fn numbers() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("port = 22", cam, true);
    check("port = 22.0", cam, true);
    check("port = 022", cam, true);
    check("port = \"22\"", cam, true);
    check("port != 22", cam, false);
    check("port != 8080", cam, true);
    check("port > 400", cam, true);
    check("port < 22", cam, false);
    check("port <= 22", cam, true);
    check("port in (23, 2323)", cam, false);
    check("port in (80, 443)", cam, true);
    check("port in (80, 443)", gw, true);
    check("port not in (80, 443)", cam, false);
    check("port not in (80, 443)", gw, false);
    check("port not in (80, 443)", bare, true);
    check("cpu > 71.4", cam, true);
    check("cpu > 71.5", cam, false);
    check("cpu >= 71.50", cam, true);
    check("cpu >= -1", cam, true);
    check("cpu < -0.5", cam, false);
    check("cpu < 100 and cpu > 50", gw, false);
    check("cpu = 40", gw, true);
    check("cpu = 0", bare, false);
    check("cpu != 0", bare, true);
}

#[test]
fn bools() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("online", cam, true);
    check("online", gw, false);
    check("online", bare, false);
    check("online = true", cam, true);
    check("online = TRUE", cam, true);
    check("online = \"true\"", cam, true);
    check("online != true", cam, false);
    check("online != true", gw, true);
    check("online != true", bare, true);
    check("online = false", gw, true);
    check("online = false", bare, false);
    check("online != false", bare, true);
    check("not online", gw, true);
    check("not online", bare, true);
    check("not online", cam, false);
    check("finding:ssh-password-auth", cam, true);
    check("finding:ssh-password-auth", gw, false);
    check("not finding:ssh-password-auth", gw, true);
    check("finding:ssh-password-auth and online", cam, true);
    check("finding:telnet", cam, false);
    check("(online)", cam, true);
}

#[test]
fn presence() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("has tag:owner", cam, true);
    check("has tag:owner", gw, false);
    check("has model", bare, false);
    check("has port", cam, true);
    check("not has tag:owner", gw, true);
    check("has finding:ssh-password-auth", gw, true);
    check("has online", gw, true);
    check("has online", bare, false);
    check("has tag:site and not has tag:owner", gw, true);
}

#[test]
fn keyed_fields() {
    let (cam, gw) = (&cam(), &gateway());
    check("tag:site = berlin", cam, true);
    check("tag:site = berlin", gw, false);
    check("tag:Site = berlin", cam, false);
    check("TAG:site = berlin", cam, true);
    check("tag:site in (berlin, Berlin)", gw, true);
    check("tag:owner = ops", cam, true);
    check("tag:owner != ops", gw, true);
    check("tag:site = berlin and tag:owner = ops", cam, true);
}

#[test]
fn multi_valued_fields() {
    let (cam, gw) = (&cam(), &gateway());
    check("group = north", cam, true);
    check("group = lobby and group = north", cam, true);
    check("group != lobby", cam, false);
    check("group != core", cam, true);
    check("group not in (lobby)", cam, false);
    check("group not in (core)", cam, true);
    check("group in (core, lobby)", gw, true);
    // Any value may satisfy each comparison: 443 > 400 and 22 < 30.
    check("port > 400 and port < 30", cam, true);
    check("port > 1000", cam, false);
    check("not port = 22", cam, false);
    check("port != 443", cam, false);
}

#[test]
fn precedence_and_grouping() {
    let (cam, gw, bare) = (&cam(), &gateway(), &bare());
    check("model = gw-200 or model = cam-x and online", cam, true);
    check("model = gw-200 or model = cam-x and online", gw, true);
    check("model = gw-200 or model = cam-x and not online", cam, false);
    check("(model = gw-200 or model = cam-x) and online", gw, false);
    check("(model = gw-200 or model = cam-x) and online", cam, true);
    check("not model = cam-x or online", cam, true);
    check("not model = cam-x or online", gw, true);
    check("not model = cam-x or online", bare, true);
    check("not (model = cam-x or online)", cam, false);
    check("not (model = cam-x or online)", gw, true);
    check("online and not online", cam, false);
    check("online or not online", bare, true);
    check("not not online", cam, true);
    check("not not not online", cam, false);
    check(
        "model = cam-x and online or model = gw-200 and not online",
        cam,
        true,
    );
    check(
        "model = cam-x and online or model = gw-200 and not online",
        gw,
        true,
    );
    check(
        "model = cam-x and online or model = gw-200 and not online",
        bare,
        false,
    );
    check("model = a or model = b or model = cam-x", cam, true);
    check(
        "model = cam-x and (port = 80 or port = 443) and tag:site = berlin",
        cam,
        true,
    );
    check("((model = cam-x) and ((online)))", cam, true);
    check("(model = a or (model = b or (model = cam-x)))", cam, true);
    check("not (not (model = cam-x and not online))", cam, false);
}

#[test]
fn keywords_and_fields_ignore_case() {
    let (cam, gw) = (&cam(), &gateway());
    check("MODEL = cam-x AND Online", cam, true);
    check("NOT online OR Model ~ CAM*", cam, true);
    check("port IN (22)", cam, true);
    check("port Not In (22)", cam, false);
    check("HAS tag:owner", cam, true);
    check("online = False", gw, true);
    check("hostname ~ cam*", cam, true);
    check("HOSTNAME = Cam-Lobby-01", cam, true);
}

#[test]
fn the_examples_from_the_docs() {
    let (cam, gw) = (&cam(), &gateway());
    check(
        "model = \"cam-x\" and firmware < \"2.1\" and tag:site = berlin",
        cam,
        true,
    );
    check(
        "(has finding:ssh-password-auth or port in (23, 2323)) and not online",
        gw,
        true,
    );
}

#[test]
fn canonical_forms() {
    check_canonical(
        "MODEL = cam-x AND Online",
        "model = \"cam-x\" and online = true",
    );
    check_canonical(
        "model = a or model = b and online",
        "model = \"a\" or (model = \"b\" and online = true)",
    );
    check_canonical(
        "(model = a and model = b) and model = c",
        "model = \"a\" and model = \"b\" and model = \"c\"",
    );
    check_canonical(
        "model = a or (model = b or model = c)",
        "model = \"a\" or model = \"b\" or model = \"c\"",
    );
    check_canonical(
        "not (online or has tag:owner)",
        "not (online = true or has tag:owner)",
    );
    check_canonical(
        "(model=a or model=b) and not (port=1 and port=2)",
        "(model = \"a\" or model = \"b\") and not (port = 1 and port = 2)",
    );
    check_canonical("port in (22, 080, 22.50)", "port in (22, 80, 22.5)");
    check_canonical("port NOT IN (1)", "port not in (1)");
    check_canonical("cpu >= -0.50", "cpu >= -0.5");
    check_canonical(
        "cpu < 1000000000000000000000",
        "cpu < 1000000000000000000000",
    );
    check_canonical(
        r#"model = "say \"hi\" \\ bye""#,
        r#"model = "say \"hi\" \\ bye""#,
    );
    check_canonical("hostname ~ *Lobby*", "hostName ~ \"*Lobby*\"");
    check_canonical("not not online", "not not online = true");
    check_canonical("((online))", "online = true");
    check_canonical("online = FALSE", "online = false");
    check_canonical("has TAG:owner", "has tag:owner");
    check_canonical("firmware<v2.1", "firmware < \"v2.1\"");
    check_canonical("model = \"\"", "model = \"\"");
    check_canonical("model = \"Zürich\"", "model = \"Zürich\"");
}

#[test]
fn canonical_round_trips() {
    let queries = [
        "model = cam-x and firmware < 2.1 and tag:site = berlin",
        "model = a or model = b and online or not has tag:owner",
        "not (port in (1, 2, 3) or cpu > 9.75) and group not in (a, \"b c\")",
        "((a_tag_free_query_is_fine_too = x))",
        "package:openssl < 3.0.0-rc1 or package:busybox ~ 1.3?.*",
        "not not not (online or not online and finding:x)",
        "model = \"\\\\\\\"\" or serial != \"and\"",
        "(model = a or model = b) and (model = c or (model = d and online))",
    ];
    let schema = schema();
    let devices = [cam(), gateway(), bare()];
    for text in queries {
        let Ok(query) = Query::parse(text, &schema) else {
            // Unknown fields etc. belong in `errors`; here every query parses.
            assert!(text.contains("a_tag_free"), "{text:?} did not parse");
            continue;
        };
        for device in &devices {
            check(text, device, query.matches(device));
        }
    }
    assert_eq!(
        Query::parse("MODEL = cam-x", &schema).unwrap(),
        Query::parse("model = \"cam-x\"", &schema).unwrap()
    );
    assert_ne!(
        Query::parse("model = cam-x", &schema).unwrap(),
        Query::parse("model = cam-y", &schema).unwrap()
    );
}

#[test]
fn errors() {
    check_err("", "at 0: empty query");
    check_err(" \t\n ", "at 0: empty query");
    check_err(
        "modle = cam-x",
        "at 0: unknown field \"modle\" (did you mean \"model\"?)",
    );
    check_err(
        "model = cam-x and frimware < 2",
        "at 18: unknown field \"frimware\" (did you mean \"firmware\"?)",
    );
    check_err(
        "firm < 2",
        "at 0: unknown field \"firm\" (did you mean \"firmware\"?)",
    );
    check_err(
        "Modl = x",
        "at 0: unknown field \"Modl\" (did you mean \"model\"?)",
    );
    check_err("colour = red", "at 0: unknown field \"colour\"");
    check_err(
        "tags:site = x",
        "at 0: unknown field \"tags\" (did you mean \"tag\"?)",
    );
    check_err(
        "model =",
        "at 7: expected a value after \"=\", found end of query",
    );
    check_err(
        "model = )",
        "at 8: expected a value after \"=\", found \")\"",
    );
    check_err(
        "model == x",
        "at 7: expected a value after \"=\", found \"=\"",
    );
    check_err(
        "port >=",
        "at 7: expected a value after \">=\", found end of query",
    );
    check_err(
        "model = and",
        "at 8: expected a value after \"=\", found keyword \"and\" (quote it to use it as text)",
    );
    check_err(
        "port = OR",
        "at 7: expected a value after \"=\", found keyword \"OR\"",
    );
    check_err("model = \"cam-x", "at 8: unterminated string");
    check_err("model = \"cam-x\\", "at 8: unterminated string");
    check_err(
        r#"model = "a\nb""#,
        r#"at 10: invalid escape "\n" in string (only \" and \\ are allowed)"#,
    );
    check_err(
        "online < true",
        "at 7: operator \"<\" is not valid for bool field \"online\" (bool fields take only = and !=)",
    );
    check_err(
        "online ~ t*",
        "at 7: operator \"~\" is not valid for bool field \"online\" (bool fields take only = and !=)",
    );
    check_err(
        "online in (true)",
        "at 7: operator \"in\" is not valid for bool field \"online\" (bool fields take only = and !=)",
    );
    check_err(
        "finding:x not in (true)",
        "at 10: operator \"not in\" is not valid for bool field \"finding\" (bool fields take only = and !=)",
    );
    check_err(
        "port ~ 2*",
        "at 5: operator \"~\" is not valid for number field \"port\" (~ matches text and version fields)",
    );
    check_err(
        "port = abc",
        "at 7: expected a number for field \"port\", found \"abc\"",
    );
    check_err(
        "port = \"22x\"",
        "at 7: expected a number for field \"port\", found string \"22x\"",
    );
    check_err(
        "port = 1e3",
        "at 7: expected a number for field \"port\", found \"1e3\"",
    );
    check_err(
        "port = .5",
        "at 7: expected a number for field \"port\", found \".5\"",
    );
    check_err(
        "port = 5.",
        "at 7: expected a number for field \"port\", found \"5.\"",
    );
    check_err(
        "port = nan",
        "at 7: expected a number for field \"port\", found \"nan\"",
    );
    check_err(
        "port = inf",
        "at 7: expected a number for field \"port\", found \"inf\"",
    );
    check_err(
        &format!("port = 1{}", "0".repeat(400)),
        "at 7: number out of range for field \"port\"",
    );
    check_err(
        "port in (1, x)",
        "at 12: expected a number for field \"port\", found \"x\"",
    );
    check_err(
        "online = yes",
        "at 9: expected true or false for field \"online\", found \"yes\"",
    );
    check_err(
        "model = cam-x cam-y",
        "at 14: expected \"and\", \"or\" or end of query, found \"cam-y\"",
    );
    check_err(
        "model = cam-x)",
        "at 13: expected \"and\", \"or\" or end of query, found \")\"",
    );
    check_err(
        "firmware > 2.0.3~rc1",
        "at 16: expected \"and\", \"or\" or end of query, found \"~\" \
         (to use \"~\" in a value, quote the value)",
    );
    check_err(
        "online not model = x",
        "at 7: expected \"and\", \"or\" or end of query, found \"not\"",
    );
    check_err(
        "(model = cam-x",
        "at 14: expected \")\" to close the \"(\" at 0, found end of query",
    );
    check_err(
        "online and (model = x port = 1)",
        "at 22: expected \")\" to close the \"(\" at 11, found \"port\"",
    );
    check_err(
        "model",
        "at 5: expected an operator after field \"model\", found end of query",
    );
    check_err(
        "model cam-x",
        "at 6: expected an operator after field \"model\", found \"cam-x\"",
    );
    check_err(
        "model \"cam-x\"",
        "at 6: expected an operator after field \"model\", found string \"cam-x\"",
    );
    check_err(
        "tag = x",
        "at 0: field \"tag\" needs a key, as in \"tag:NAME\"",
    );
    check_err(
        "has tag",
        "at 4: field \"tag\" needs a key, as in \"tag:NAME\"",
    );
    check_err("tag: = x", "at 4: expected a key after \"tag:\"");
    check_err("model:x = y", "at 5: field \"model\" does not take a key");
    check_err(
        "and online",
        "at 0: expected a field, \"has\", \"not\" or \"(\", found \"and\"",
    );
    check_err(
        "online and",
        "at 10: expected a field, \"has\", \"not\" or \"(\", found end of query",
    );
    check_err(
        "online or or online",
        "at 10: expected a field, \"has\", \"not\" or \"(\", found \"or\"",
    );
    check_err(
        "()",
        "at 1: expected a field, \"has\", \"not\" or \"(\", found \")\"",
    );
    check_err(
        "\"model\" = x",
        "at 0: expected a field, \"has\", \"not\" or \"(\", found string \"model\"",
    );
    check_err(
        "has",
        "at 3: expected a field after \"has\", found end of query",
    );
    check_err(
        "has (model)",
        "at 4: expected a field after \"has\", found \"(\"",
    );
    check_err(
        "port in 22",
        "at 8: expected \"(\" after \"in\", found \"22\"",
    );
    check_err(
        "port not in 22",
        "at 12: expected \"(\" after \"not in\", found \"22\"",
    );
    check_err(
        "port in (22 23)",
        "at 12: expected \",\" or \")\" in the list, found \"23\"",
    );
    check_err(
        "port in ()",
        "at 9: expected a value in the list, found \")\"",
    );
    check_err(
        "port in (22,)",
        "at 12: expected a value in the list, found \")\"",
    );
    check_err(
        "port in (22",
        "at 11: expected \",\" or \")\" in the list, found end of query",
    );
    check_err(
        "model ! cam",
        "at 6: unexpected character \"!\" (did you mean \"!=\"?)",
    );
    check_err("model = cam#x", "at 11: unexpected character \"#\"");
    check_err("model = Zürich", "at 9: unexpected character \"ü\"");
    check_err("model = 'x'", "at 8: unexpected character \"\\'\"");
}

#[test]
fn error_fields() {
    let error = Query::parse("model = cam-x and modle = x", &schema()).unwrap_err();
    assert_eq!(error.position, 18);
    assert_eq!(
        error.message,
        "unknown field \"modle\" (did you mean \"model\"?)"
    );
}

#[test]
fn length_limit() {
    let at_limit = format!("model = \"{}\"", "x".repeat(4096 - 10));
    assert_eq!(at_limit.len(), 4096);
    check(&at_limit, &cam(), false);
    let over = format!("model = \"{}\"", "x".repeat(4096 - 9));
    check_err(&over, "at 4096: query is longer than 4096 bytes");
    check_err(
        &"(".repeat(100_000),
        "at 4096: query is longer than 4096 bytes",
    );
}

#[test]
fn depth_limits() {
    let (cam, gw) = (&cam(), &gateway());
    // Parentheses.
    check(
        &format!("{}online{}", "(".repeat(64), ")".repeat(64)),
        cam,
        true,
    );
    check_err(
        &format!("{}online{}", "(".repeat(65), ")".repeat(65)),
        "at 64: query nests deeper than 64 levels",
    );
    check_err(
        &"(".repeat(4096),
        "at 64: query nests deeper than 64 levels",
    );
    // `not`s.
    check(&format!("{}online", "not ".repeat(64)), cam, true);
    check_err(
        &format!("{}online", "not ".repeat(65)),
        "at 256: query nests deeper than 64 levels",
    );
    check_err(
        &"not ".repeat(1024),
        "at 256: query nests deeper than 64 levels",
    );
    // Alternating `or` and `and`: 2 levels per parenthesis.
    let nested = |levels: usize| {
        let mut text = "online".to_owned();
        for _ in 0..levels {
            text = format!("online or online and ({text})");
        }
        text
    };
    check(&nested(31), gw, false);
    check(&nested(31), cam, true);
    let error = Query::parse(&nested(40), &schema()).unwrap_err();
    assert_eq!(error.message, "query nests deeper than 64 levels");
}

#[test]
fn schema_api() {
    let schema = schema();
    assert_eq!(schema.fields().len(), 11);
    assert_eq!(schema.fields()[1].name, "firmware");
    assert_eq!(schema.field_id("FIRMWARE"), Some(FieldId(1)));
    assert_eq!(schema.field_id("hostname"), Some(FieldId(10)));
    assert_eq!(schema.field_id("nope"), None);
}

#[test]
fn wrong_value_variants_never_match() {
    struct Confused;
    impl Subject for Confused {
        fn any_value(
            &self,
            _: FieldId,
            _: Option<&str>,
            f: &mut dyn FnMut(Value<'_>) -> bool,
        ) -> bool {
            f(Value::Number(f64::NAN)) || f(Value::Bool(true)) || f(Value::Text("22"))
        }
    }
    let schema = schema();
    let cases = [
        ("port = 22", false),
        ("port < 1000", false),
        ("port != 22", true),
        ("model = 22", true),
        ("model ~ *", true),
        ("online", true),
        ("cpu >= 0", false),
        ("has cpu", true),
    ];
    for (text, expected) in cases {
        let query = Query::parse(text, &schema).unwrap();
        assert_eq!(query.matches(&Confused), expected, "{text:?}");
    }
}

/// A flat subject like a server's in-memory inventory row.
struct Row {
    model: String,
    firmware: String,
    site: String,
    ports: Vec<f64>,
    password_auth: bool,
}

impl Subject for Row {
    fn any_value(
        &self,
        field: FieldId,
        key: Option<&str>,
        f: &mut dyn FnMut(Value<'_>) -> bool,
    ) -> bool {
        match (field.0, key) {
            (0, None) => f(Value::Text(&self.model)),
            (1, None) => f(Value::Text(&self.firmware)),
            (2, None) => self.ports.iter().any(|&port| f(Value::Number(port))),
            (4, Some("site")) => f(Value::Text(&self.site)),
            (7, Some("ssh-password-auth")) => f(Value::Bool(self.password_auth)),
            _ => false,
        }
    }
}

#[test]
fn evaluates_100_000_devices() {
    let models = ["cam-x", "cam-y", "gw-200", "sensor-3"];
    let sites = ["berlin", "paris", "oslo"];
    let rows: Vec<Row> = (0..100_000usize)
        .map(|i| Row {
            model: models[i % models.len()].to_owned(),
            firmware: format!("2.{}.{}", i % 13, i % 7),
            site: sites[i % sites.len()].to_owned(),
            ports: vec![22.0, if i % 2 == 0 { 443.0 } else { 8080.0 }],
            password_auth: i % 5 == 0,
        })
        .collect();
    let query = Query::parse(
        "model ~ cam-* and firmware < 2.10 and tag:site = berlin and port in (443, 8443) \
         and not finding:ssh-password-auth",
        &schema(),
    )
    .unwrap();
    let start = Instant::now();
    let matched = rows.iter().filter(|row| query.matches(*row)).count();
    let elapsed = start.elapsed();
    println!("100,000 devices, 5 clauses: {matched} matched in {elapsed:?}");
    let expected = (0..100_000usize)
        .filter(|i| i % 4 < 2 && i % 13 < 10 && i % 3 == 0 && i % 2 == 0 && i % 5 != 0)
        .count();
    assert_eq!(matched, expected);
}
