//! Every view and popup rendered with ratatui's TestBackend at 80x24 and 120x40, on a fixed
//! clock and a fixed fleet, driven through the app's real key handling. Plus behaviour checks
//! of the headless app: sort and selection hold while results stream in, freeze, mouse.

use certdeck::app::{App, AppEvent, Effect};
use certdeck::config::keymap::Keymap;
use certdeck::config::theme::Theme;
use certdeck::model::{SourceKind, Thresholds};
use certdeck::sources::{Problem, ProblemKind, RoundEnd, SourceEvent, SourceId};
use certdeck::testing::{sample_records, NOW};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

fn key(c: char) -> AppEvent {
    AppEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(c: KeyCode) -> AppEvent {
    AppEvent::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        app.update(key(c));
    }
}

/// An app sized w x h with the sample fleet streamed in as source events.
fn app(w: u16, h: u16) -> App {
    let mut a = App::new(NOW, Thresholds::default(), Keymap::default());
    a.update(AppEvent::Resize(w, h));
    a.apply_batch(certdeck::testing::sample_events());
    a
}

fn observed(record: certdeck::model::Record) -> AppEvent {
    AppEvent::Source(SourceEvent::Observed {
        source: std::sync::Arc::new(SourceId::new(SourceKind::TLS, "")),
        record,
    })
}

fn draw(app: &App, theme: &Theme) -> ratatui::buffer::Buffer {
    let (w, h) = app.ui.size;
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| certdeck::ui::render(app, theme, f)).unwrap();
    term.backend().buffer().clone()
}

fn text(app: &App) -> String {
    let buf = draw(app, &Theme::default_dark());
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The screen with styles: each run of equally styled cells as `«fg/bg/mods»text`.
fn styled(app: &App, theme: &Theme) -> String {
    let buf = draw(app, theme);
    let name = |c: Color| {
        if c == Color::Reset {
            "-".to_owned()
        } else {
            format!("{c:?}").to_lowercase()
        }
    };
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut last = String::new();
        for x in 0..buf.area.width {
            let c = &buf[(x, y)];
            let mods = if c.modifier.is_empty() {
                String::new()
            } else {
                format!("/{:?}", c.modifier).replace("Modifier", "")
            };
            let s = format!("«{}/{}{mods}»", name(c.fg), name(c.bg));
            if s != last {
                out.push_str(&s);
                last = s;
            }
            out.push_str(c.symbol());
        }
        out.push('\n');
    }
    out
}

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

#[test]
fn table_view() {
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("table_{w}x{h}"), text(&app(w, h)));
    }
}

#[test]
fn timeline_view_with_zoom_and_grouping() {
    for (w, h) in SIZES {
        let mut a = app(w, h);
        a.update(key('t'));
        insta::assert_snapshot!(format!("timeline_{w}x{h}"), text(&a));
    }
    let mut a = app(120, 40);
    a.update(key('t'));
    a.update(key('-'));
    a.update(key('b'));
    insta::assert_snapshot!("timeline_1y_by_issuer_120x40", text(&a));
    a.update(key('+'));
    a.update(key('+'));
    a.update(key('+'));
    insta::assert_snapshot!("timeline_7d_by_issuer_120x40", text(&a));
}

#[test]
fn details_popup() {
    for (w, h) in SIZES {
        let mut a = app(w, h);
        a.update(key('/'));
        typed(&mut a, "payments");
        a.update(code(KeyCode::Enter));
        a.update(code(KeyCode::Enter));
        insta::assert_snapshot!(format!("details_{w}x{h}"), text(&a));
    }
    let mut a = app(120, 40);
    a.update(key('/'));
    typed(&mut a, "down.example");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    insta::assert_snapshot!("details_error_120x40", text(&a));
    let mut a = app(120, 40);
    a.update(key('/'));
    typed(&mut a, "shared");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    for _ in 0..12 {
        a.update(key('j'));
    }
    insta::assert_snapshot!("details_scrolled_locations_and_pem_120x40", text(&a));
}

#[test]
fn help_popup() {
    for (w, h) in SIZES {
        let mut a = app(w, h);
        a.update(key('?'));
        insta::assert_snapshot!(format!("help_{w}x{h}"), text(&a));
    }
}

#[test]
fn filter_command_and_quick_filters() {
    let mut a = app(80, 24);
    a.update(key('/'));
    typed(&mut a, "!example\\.com:443");
    insta::assert_snapshot!("filter_typing_inverted_80x24", text(&a));
    let mut a = app(80, 24);
    a.update(key('4'));
    insta::assert_snapshot!("only_errors_80x24", text(&a));
    let mut a = app(80, 24);
    a.update(key(':'));
    typed(&mut a, "sort name desc");
    insta::assert_snapshot!("command_line_80x24", text(&a));
    a.update(code(KeyCode::Enter));
    insta::assert_snapshot!("sorted_by_name_desc_80x24", text(&a));
    a.update(key(':'));
    typed(&mut a, "bogus");
    a.update(code(KeyCode::Enter));
    insta::assert_snapshot!("unknown_command_message_80x24", text(&a));
}

#[test]
fn marked_frozen_and_redacted() {
    let mut a = app(80, 24);
    a.update(code(KeyCode::Char(' ')));
    a.update(code(KeyCode::Char(' ')));
    a.update(key('f'));
    a.update(key('H'));
    insta::assert_snapshot!("marked_frozen_redacted_80x24", text(&a));
}

#[test]
fn empty_waiting_and_too_small() {
    let mut a = App::new(NOW, Thresholds::default(), Keymap::default());
    a.update(AppEvent::Resize(80, 24));
    insta::assert_snapshot!("empty_fleet_80x24", text(&a));
    let tls = std::sync::Arc::new(SourceId::new(SourceKind::TLS, ""));
    a.apply_batch(vec![
        SourceEvent::Started {
            source: tls.clone(),
            full: true,
        },
        SourceEvent::Planned {
            source: tls,
            total: 500,
        },
    ]);
    insta::assert_snapshot!("waiting_for_results_80x24", text(&a));
    let mut a = app(79, 24);
    insta::assert_snapshot!("too_small_79x24", text(&a));
    a.update(AppEvent::Resize(60, 15));
    insta::assert_snapshot!("too_small_60x15", text(&a));
}

#[test]
fn colours_carry_meaning_in_dark_and_monochrome_keeps_glyphs() {
    let a = app(80, 24);
    insta::assert_snapshot!(
        "table_dark_styles_80x24",
        styled(&a, &Theme::default_dark())
    );
    let mono = Theme::load("dark", None, true).unwrap();
    let out = styled(&a, &mono);
    assert!(
        !out.contains("«red") && !out.contains("«green") && !out.contains("/red"),
        "NO_COLOR uses no colour"
    );
    assert!(
        out.contains("✖ EXPIRED") && out.contains("‼ CRIT") && out.contains("✔ OK"),
        "glyphs and words carry meaning"
    );
    insta::assert_snapshot!("table_monochrome_styles_80x24", out);
    // The selected row is visible without colour (reversed).
    let buf = draw(&a, &mono);
    assert!(buf[(3, 2)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn selection_and_sort_hold_while_results_arrive() {
    let mut a = app(80, 24);
    a.update(key('N'));
    // Select www.example.com.
    a.update(key('/'));
    typed(&mut a, "www");
    a.update(code(KeyCode::Enter));
    let chosen = a.selected_record().unwrap().id.clone();
    a.update(code(KeyCode::Esc));
    assert_eq!(
        a.selected_record().unwrap().id,
        chosen,
        "clearing the filter keeps the selection"
    );
    let before = a.ui.selected;
    // A new certificate that sorts first by name arrives; the selection follows its row.
    let mut r = sample_records().remove(3);
    r.location = "aaa.example.com:443".into();
    r.id = certdeck::model::record::location_id(SourceKind::TLS, &r.location);
    let mut c = (**r.cert.as_ref().unwrap()).clone();
    c.common_name = Some("aaa.example.com".into());
    // Another certificate (the fleet holds one value per SHA-256).
    c.sha256 = certdeck::model::cert::sha256_hex(b"aaa.example.com");
    r.cert = Some(std::sync::Arc::new(c));
    a.update(observed(r));
    assert_eq!(
        a.fleet.spec.sort,
        certdeck::model::view::SortColumn::Name,
        "the sort holds"
    );
    assert_eq!(a.selected_record().unwrap().id, chosen);
    assert_eq!(
        a.ui.selected,
        before + 1,
        "the row moved down by one and the selection moved with it"
    );
    let first = &a.fleet.records()[a.fleet.rows[0]];
    assert_eq!(first.location, "aaa.example.com:443");
}

#[test]
fn freeze_holds_updates_until_released() {
    let mut a = app(80, 24);
    let n = a.fleet.len();
    a.update(key('f'));
    let mut r = sample_records().remove(0);
    r.location = "late.example.com:443".into();
    r.id = certdeck::model::record::location_id(SourceKind::TLS, &r.location);
    a.update(observed(r));
    assert_eq!(a.fleet.len(), n, "frozen: nothing moves");
    a.update(key('f'));
    assert_eq!(a.fleet.len(), n + 1, "released: the held result is applied");
}

#[test]
fn keys_produce_effects_and_mouse_selects() {
    let mut a = app(80, 24);
    assert_eq!(a.update(key('R')), vec![Effect::RefreshAll]);
    let eff = a.update(key('r'));
    let sel = a.selected_record().unwrap();
    assert_eq!(eff, vec![Effect::Reobserve(vec![sel.id.clone()])]);
    match a.update(key('y')).as_slice() {
        [Effect::Copy(pem)] => assert!(pem.starts_with("-----BEGIN CERTIFICATE-----")),
        other => panic!("{other:?}"),
    }
    a.update(AppEvent::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 10,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(a.ui.selected, 3, "row 5 of the screen is the 4th body row");
    a.update(AppEvent::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 10,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(a.ui.selected, 6);
    assert_eq!(a.update(key('q')), vec![Effect::Quit]);
    assert!(a.should_quit);
}

/// The sample fleet, then a round of the `tls` source that fails as a whole an hour later.
fn app_with_failing_tls(w: u16, h: u16) -> App {
    let mut a = app(w, h);
    let tls = std::sync::Arc::new(SourceId::new(SourceKind::TLS, ""));
    a.update(AppEvent::Tick(NOW + 3600));
    a.apply_batch(vec![
        SourceEvent::Started {
            source: tls.clone(),
            full: true,
        },
        SourceEvent::Finished {
            source: tls,
            full: true,
            end: RoundEnd::failed(Problem::new(
                ProblemKind::Unreachable,
                "no route to any endpoint",
            )),
        },
    ]);
    a
}

#[test]
fn a_failing_source_keeps_its_rows_marked_stale_with_their_age() {
    let a = app_with_failing_tls(120, 40);
    let screen = text(&a);
    insta::assert_snapshot!("table_stale_source_120x40", screen);
    assert!(
        screen.contains("tls ✖ unreachable"),
        "the title names the failing source"
    );
    assert!(screen.contains("stale 1h"), "rows show their age: {screen}");
    assert!(
        screen.contains("tls: failing: unreachable: no route to any endpoint"),
        "and the message line says why"
    );
    let files = a
        .fleet
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.source == SourceKind::FILE)
        .all(|(i, _)| a.fleet.stale_age(i, a.now).is_none());
    assert!(files, "rows of the healthy source are not stale");
}

#[test]
fn the_sources_popup_shows_every_source_with_its_health() {
    let mut a = app_with_failing_tls(120, 40);
    a.update(key('s'));
    let screen = text(&a);
    insta::assert_snapshot!("sources_popup_120x40", screen);
    assert!(screen.contains("file  ok"), "{screen}");
    assert!(
        screen.contains("tls  failing since 12:06:40Z: unreachable"),
        "{screen}"
    );
    a.update(key('s'));
    assert!(a.ui.popup.is_none());
}

/// A keystore entry's details: format, alias, entry kind, where the password came from,
/// integrity, and what was skipped.
#[test]
fn keystore_entry_details() {
    use certdeck::sources::keystore::{extra, Entry, EntryKind, Format, Opened};
    let mut a = app(120, 40);
    let mut r = sample_records().remove(0);
    r.source = SourceKind::FILE;
    r.location = "/etc/kafka/ssl/broker.jceks#kafka".into();
    r.id = certdeck::model::record::location_id(SourceKind::FILE, &r.location);
    r.tls = None;
    let opened = Opened {
        format: Format::Jceks,
        entries: Vec::new(),
        skipped: vec!["aes (secret key)".into()],
        verified: true,
    };
    let entry = Entry {
        alias: "kafka".into(),
        kind: EntryKind::PrivateKey,
        certs: Vec::new(),
    };
    r.extra = Some(std::sync::Arc::new(extra(
        &opened,
        &entry,
        "kafka",
        2,
        "environment variable KAFKA_SSL_PASSWORD",
    )));
    a.update(AppEvent::Source(SourceEvent::Observed {
        source: std::sync::Arc::new(SourceId::new(SourceKind::FILE, "")),
        record: r,
    }));
    a.update(key('/'));
    typed(&mut a, "broker.jceks");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    let t = text(&a);
    assert!(
        t.contains("JCEKS, alias kafka") && t.contains("aes (secret key)"),
        "{t}"
    );
    insta::assert_snapshot!("details_keystore_entry_120x40", t);
}

#[test]
fn hostile_text_never_reaches_the_terminal_raw() {
    let mut a = app(120, 40);
    let mut r = sample_records().remove(0);
    let mut c = (**r.cert.as_ref().unwrap()).clone();
    c.common_name = Some("evil\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\u{202e}moc".into());
    c.subject = "CN=evil\u{1b}[31m".into();
    r.cert = Some(std::sync::Arc::new(c));
    r.location = "evil\u{1b}[H.example:443".into();
    r.id = certdeck::model::record::location_id(SourceKind::TLS, &r.location);
    a.update(observed(r));
    a.update(key('/'));
    typed(&mut a, "evil");
    a.update(code(KeyCode::Enter));
    for screen in [draw(&a, &Theme::default_dark()), {
        a.update(code(KeyCode::Enter));
        draw(&a, &Theme::default_dark())
    }] {
        let mut seen_name = false;
        for cell in screen.content() {
            assert!(
                !cell
                    .symbol()
                    .chars()
                    .any(|c| c.is_control() || c == '\u{202e}'),
                "a control character reached the screen: {:?}",
                cell.symbol()
            );
            seen_name |= cell.symbol() == "v";
        }
        assert!(seen_name, "the row is there, made safe");
    }
}

#[test]
fn rows_removed_by_a_source_leave_the_screen_and_the_selection_holds() {
    let mut a = app(80, 24);
    let victim = a.fleet.records()[a.fleet.rows[1]].id.clone();
    a.update(key('j'));
    a.update(key('j'));
    let chosen = a.selected_record().unwrap().id.clone();
    a.update(AppEvent::Source(SourceEvent::Removed {
        source: std::sync::Arc::new(SourceId::new(SourceKind::TLS, "")),
        id: victim.clone(),
    }));
    assert!(a.fleet.get(&victim).is_none());
    assert_eq!(
        a.selected_record().unwrap().id,
        chosen,
        "the selection follows its row"
    );
    assert!(!text(&a).contains(&victim));
}

/// A TLS row whose certificate is revoked (by an OCSP answer), and one whose responder did not
/// answer: the table's glyph and word, the details' revocation line, the timeline's pin.
#[test]
fn revoked_rows_show_their_status_and_the_details_say_when_and_by_what() {
    use certdeck::model::status::DAY;
    use certdeck::model::{Record, Revocation};
    use certdeck::testing::facts;
    let mut a = app(120, 40);
    let mut revoked = Record::new(SourceKind::TLS, "revoked.example:443".into(), NOW);
    revoked.cert = Some(std::sync::Arc::new(facts(
        "revoked.example",
        "Example Intermediate CA",
        NOW - 10 * DAY,
        NOW + 80 * DAY,
        "ECDSA P-256",
        &["revoked.example"],
    )));
    revoked.revocation = Some(Revocation::revoked(
        NOW - 2 * DAY,
        Some("keyCompromise".into()),
        "OCSP http://ocsp.example/",
    ));
    let mut unknown = Record::new(SourceKind::TLS, "quiet.example:443".into(), NOW);
    unknown.cert = Some(std::sync::Arc::new(facts(
        "quiet.example",
        "Example Intermediate CA",
        NOW - 10 * DAY,
        NOW + 300 * DAY,
        "ECDSA P-256",
        &["quiet.example"],
    )));
    unknown.revocation = Some(Revocation::unknown(
        "revocation unknown: OCSP http://ocsp.example/: timed out",
    ));
    a.update(observed(revoked));
    a.update(observed(unknown));
    let table = text(&a);
    assert!(table.contains("⊘ REVOKED"), "{table}");
    insta::assert_snapshot!("table_with_revoked_120x40", table);
    a.update(key('/'));
    typed(&mut a, "revoked.example");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    let details = text(&a);
    assert!(
        details.contains("revoked 2026-11-16T11:06:40Z (keyCompromise), by OCSP"),
        "{details}"
    );
    insta::assert_snapshot!("details_revoked_120x40", details);
    a.update(code(KeyCode::Esc));
    a.update(code(KeyCode::Esc));
    a.update(key('t'));
    insta::assert_snapshot!("timeline_with_revoked_120x40", text(&a));
}

/// Short-lived certificates (SPIFFE SVIDs, mesh leaves) are judged by lifetime used: the
/// details say so, and the timeline zooms to 24 hours and 1 hour to place them.
#[test]
fn short_lived_rows_are_judged_by_lifetime_used_and_the_timeline_zooms_to_hours() {
    use certdeck::model::Record;
    use certdeck::testing::facts;
    let mut a = app(120, 40);
    let svid = |name: &str, born_ago: i64, life: i64| {
        let mut r = Record::new(SourceKind::new("spiffe"), format!("spiffe://{name}"), NOW);
        r.cert = Some(std::sync::Arc::new(facts(
            name,
            "SPIFFE test CA",
            NOW - born_ago,
            NOW - born_ago + life,
            "ECDSA P-256",
            &[],
        )));
        r
    };
    a.update(observed(svid("overdue.svid", 2592, 3600))); // 72% of 1h
    a.update(observed(svid("fresh.svid", 900, 3600))); // 25% of 1h
    a.update(observed(svid("daily.svid", 15 * 3600, 24 * 3600))); // 62% of 24h
    a.update(key('/'));
    typed(&mut a, "overdue.svid");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    let details = text(&a);
    assert!(
        details.contains("CRIT, 72% of 1h lifetime used; rotation overdue"),
        "{details}"
    );
    insta::assert_snapshot!("details_short_lived_120x40", details);
    a.update(code(KeyCode::Esc));
    a.update(code(KeyCode::Esc));
    a.update(key('/'));
    typed(&mut a, "svid");
    a.update(code(KeyCode::Enter));
    a.update(key('t'));
    for _ in 0..6 {
        a.update(key('+'));
    }
    let hour = text(&a);
    assert!(
        hour.contains("horizon 1 hour") && hour.contains("15m"),
        "{hour}"
    );
    insta::assert_snapshot!("timeline_1h_short_lived_120x40", hour);
    a.update(key('-'));
    let day = text(&a);
    assert!(
        day.contains("horizon 24 hours") && day.contains("12h"),
        "{day}"
    );
    insta::assert_snapshot!("timeline_24h_short_lived_120x40", day);
}

/// One certificate, many places: the same leaf on a live endpoint, in ACM and in a
/// Kubernetes Secret is one certificate whose details list every location (endpoints first,
/// this row marked); the endpoint serves it while a file holds a renewed one for the same
/// names, which the details call drift, naming the store.
#[test]
fn details_list_every_location_of_a_certificate_and_the_drift_of_an_endpoint() {
    use certdeck::model::status::DAY;
    use std::sync::Arc;
    let mut a = App::new(NOW, Thresholds::default(), Keymap::default());
    a.update(AppEvent::Resize(120, 40));
    let names = ["shop.example", "www.shop.example"];
    let old = Arc::new(certdeck::testing::facts(
        "shop.example",
        "Example Intermediate CA",
        NOW - 80 * DAY,
        NOW + 10 * DAY,
        "ECDSA P-256",
        &names,
    ));
    let renewed = Arc::new(certdeck::testing::facts(
        "shop.example",
        "Example Intermediate CA",
        NOW - DAY,
        NOW + 89 * DAY,
        "ECDSA P-256",
        &names,
    ));
    let mut served = certdeck::model::Record::new(SourceKind::TLS, "shop.example:443".into(), NOW);
    served.cert = Some(old.clone());
    served.tls = Some(certdeck::model::TlsInfo {
        tls_version: Some("TLSv1.3".into()),
        ..certdeck::model::TlsInfo::default()
    });
    let acm = certdeck::model::Record::from_store(
        SourceKind::new("aws"),
        "arn:aws:acm:eu-west-1:123456789012:certificate/0b2c7d1e",
        Some(old.clone()),
        Vec::new(),
        certdeck::model::Extra {
            key: "aws",
            json: serde_json::json!({"kind": "acm-certificate"}),
            details: Vec::new(),
            note: None,
        },
        NOW,
    );
    let mut secret = certdeck::model::Record::new(
        SourceKind::K8S,
        "prod/shop/secret/shop-tls#tls.crt".into(),
        NOW,
    );
    secret.cert = Some(old);
    secret.k8s = Some(certdeck::model::K8sInfo {
        context: "prod".into(),
        namespace: "shop".into(),
        kind: "Secret".into(),
        name: "shop-tls".into(),
        key: Some("tls.crt".into()),
        ..certdeck::model::K8sInfo::default()
    });
    let file =
        certdeck::model::Record::new(SourceKind::FILE, "/etc/ssl/shop/fullchain.pem".into(), NOW)
            .with_cert(renewed);
    for r in [acm, secret, file, served] {
        a.update(observed(r));
    }
    a.update(key('/'));
    typed(&mut a, "shop.example:443");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    for _ in 0..12 {
        a.update(key('j'));
    }
    let t = text(&a);
    assert!(t.contains("Locations of this certificate (3)"), "{t}");
    assert!(
        t.contains("arn:aws:acm:eu-west-1:123456789012:certificate/0b2c7d1e")
            && t.contains("prod/shop/secret/shop-tls#tls.crt")
            && t.contains("shop.example:443  (this row)"),
        "{t}"
    );
    assert!(
        t.contains("file /etc/ssl/shop/fullchain.pem"),
        "the drift names the store: {t}"
    );
    insta::assert_snapshot!("details_many_locations_and_drift_120x40", t);
}

/// SPIFFE IDs are first-class in every source's rows: `spiffe:` keeps the rows with one (a
/// TLS endpoint's URI SAN, a file's, a SPIFFE source's SVID), `spiffe://TD/PATH` narrows by
/// prefix, `!spiffe:` inverts, and the details of an endpoint show its SPIFFE ID.
#[test]
fn spiffe_filters_and_details_name_the_spiffe_ids_of_every_source() {
    use certdeck::model::Record;
    use certdeck::testing::facts;
    let mut a = app(120, 40);
    let mut file = Record::new(SourceKind::FILE, "/etc/envoy/svid.pem".into(), NOW);
    file.cert = Some(std::sync::Arc::new(facts(
        "envoy",
        "SPIFFE test CA",
        NOW - 3600,
        NOW + 20 * 86400,
        "ECDSA P-256",
        &["spiffe://example.com/ns/edge/sa/envoy"],
    )));
    a.update(observed(file));
    let mut svid = Record::new(
        SourceKind::new("spiffe"),
        "spiffe://other.test/billing".into(),
        NOW,
    );
    svid.cert = Some(std::sync::Arc::new(facts(
        "billing",
        "SPIFFE test CA",
        NOW - 600,
        NOW + 3000,
        "ECDSA P-256",
        &["spiffe://other.test/billing"],
    )));
    a.update(observed(svid));
    let filtered = |a: &mut App, q: &str| {
        a.update(code(KeyCode::Esc));
        a.update(key('/'));
        typed(a, q);
        a.update(code(KeyCode::Enter));
        text(a)
    };
    let any = filtered(&mut a, "spiffe:");
    assert!(any.contains("3/14"), "{any}");
    // (The SPIFFE row's location is cut at the left at this width.)
    for loc in [
        "mesh.example.com",
        "/etc/envoy/svid.pem",
        "//other.test/billing",
    ] {
        assert!(any.contains(loc), "{loc}: {any}");
    }
    insta::assert_snapshot!("spiffe_filter_120x40", any);
    let shop = filtered(&mut a, "spiffe://example.com/ns/shop/");
    assert!(
        shop.contains("1/14") && shop.contains("mesh.example.com"),
        "{shop}"
    );
    let td = filtered(&mut a, "spiffe://EXAMPLE.com/");
    assert!(td.contains("2/14") && !td.contains("other.test"), "{td}");
    let none = filtered(&mut a, "!spiffe:");
    assert!(
        none.contains("11/14") && !none.contains("mesh.example.com"),
        "{none}"
    );
    filtered(&mut a, "spiffe://example.com/ns/shop/");
    a.update(code(KeyCode::Enter));
    let details = text(&a);
    assert!(
        details.contains(
            "SPIFFE ID     spiffe://example.com/ns/shop/sa/web  (trust domain example.com)"
        ),
        "{details}"
    );
    insta::assert_snapshot!("details_spiffe_id_120x40", details);
}

/// A PKCS#11 token's certificate whose private key is on the token: the details say "key in
/// HSM" as a protected finding, with the module, token, object, login and linked key.
#[cfg(feature = "pkcs11")]
#[test]
fn token_certificate_details_say_key_in_hsm() {
    use certdeck::sources::pkcs11::rows::{
        records, CertObject, KeyClass, KeyObject, Login, ModuleRead, TokenRead,
    };
    use certdeck::sources::pkcs11::Pkcs11Config;
    let keypair = rcgen::KeyPair::generate().unwrap();
    let der = rcgen::CertificateParams::new(vec!["web.hsm.test".to_owned()])
        .unwrap()
        .self_signed(&keypair)
        .unwrap()
        .der()
        .to_vec();
    let settings = Pkcs11Config {
        module: "/usr/lib/softhsm/libsofthsm2.so".into(),
        token: Some("web".into()),
        ..Pkcs11Config::default()
    }
    .resolve(false)
    .unwrap();
    let read = ModuleRead {
        library: Some("Implementation of PKCS11 2.6 by SoftHSM, Cryptoki 2.40".into()),
        tokens: vec![TokenRead {
            slot: 1570999482,
            label: "web".into(),
            serial: "12bf9b745da38cba".into(),
            model: "SoftHSM v2".into(),
            manufacturer: "SoftHSM project".into(),
            login: Login::LoggedIn,
            certs: vec![CertObject {
                label: Some("web".into()),
                id: vec![1],
                value: Some(der),
                cert_type: Some("X_509".into()),
                x509: true,
                private: false,
            }],
            keys: vec![KeyObject {
                class: KeyClass::Private,
                label: Some("web".into()),
                id: vec![1],
                key_type: Some("EC".into()),
                sensitive: Some(true),
                extractable: Some(false),
                modulus: None,
                ec_point: None,
            }],
            problem: None,
        }],
        ..ModuleRead::default()
    };
    let (mut rows, problems) = records(&settings, &read, NOW);
    assert!(problems.is_empty());
    let token_row = rows.remove(0);
    // The sample fleet's certificate (fixed dates and names) at the token row's place.
    let mut r = sample_records().remove(0);
    r.source = token_row.source;
    r.location = token_row.location.clone();
    r.id = token_row.id.clone();
    r.tls = None;
    r.extra = token_row.extra.clone();
    r.key_findings = token_row.key_findings.clone();
    let mut a = app(120, 40);
    a.update(AppEvent::Source(SourceEvent::Observed {
        source: std::sync::Arc::new(SourceId::new(
            certdeck::sources::pkcs11::KIND,
            "libsofthsm2.so token 'web'",
        )),
        record: r,
    }));
    a.update(key('/'));
    typed(&mut a, "libsofthsm2");
    a.update(code(KeyCode::Enter));
    a.update(code(KeyCode::Enter));
    let t = text(&a);
    assert!(
        t.contains(
            "protected     key in HSM: private key held on HSM token 'web' (object 'web', id 01)"
        ),
        "{t}"
    );
    assert!(
        t.contains("key in HSM: private key object 'web', id 01 (EC, sensitive, not extractable)"),
        "{t}"
    );
    insta::assert_snapshot!("details_pkcs11_key_in_hsm_120x40", t);
}

/// The sample fleet plus rows that show each kind of key finding: a key in a ConfigMap
/// (warning), a weak RSA key seen in the certificate (critical, no key location), a key on an
/// HSM token (protected).
fn app_with_key_findings(w: u16, h: u16) -> App {
    use certdeck::model::keyaudit::{KeyFinding, Severity};
    use certdeck::model::Record;
    use certdeck::testing::facts;
    use std::sync::Arc;
    let d = 86_400;
    let mut a = app(w, h);
    let mut cm = Record::new(
        SourceKind::K8S,
        "k8s/shop/configmap/app-tls#tls.crt".into(),
        NOW,
    )
    .with_cert(Arc::new(facts(
        "shop.internal",
        "Example Intermediate CA",
        NOW - 10 * d,
        NOW + 80 * d,
        "ECDSA P-256",
        &["shop.internal"],
    )));
    cm.key_findings = vec![KeyFinding::new(
        "key_in_configmap",
        Severity::Warning,
        "private key stored in a ConfigMap (readable by anyone who may read ConfigMaps)",
        Some("k8s/shop/configmap/app-tls#tls.key".into()),
    )];
    let weak =
        Record::new(SourceKind::FILE, "/srv/old/weak.crt".into(), NOW).with_cert(Arc::new(facts(
            "weak.internal",
            "Example Intermediate CA",
            NOW - 10 * d,
            NOW + 300 * d,
            "RSA 1024",
            &["weak.internal"],
        )));
    let mut hsm = Record::new(
        SourceKind::new("pkcs11"),
        "pkcs11:token=edge;object=edge-signing".into(),
        NOW,
    )
    .with_cert(Arc::new(facts(
        "edge-signing",
        "Example Intermediate CA",
        NOW - 10 * d,
        NOW + 400 * d,
        "ECDSA P-256",
        &[],
    )));
    hsm.key_findings = vec![KeyFinding::new(
        "key_in_hsm",
        Severity::Protected,
        "private key on token 'edge', not extractable",
        Some("pkcs11:token=edge;id=01".into()),
    )];
    for r in [cm, weak, hsm] {
        a.update(observed(r));
    }
    a
}

/// The findings column in the table, the `keys` quick filter (5 and `:only keys`) and the
/// key audit view (F and `:keys`): worst first, key locations shown, details one key away.
#[test]
fn key_findings_column_filter_and_audit_view() {
    for (w, h) in [(80, 24), (120, 40), (160, 40)] {
        let a = app_with_key_findings(w, h);
        insta::assert_snapshot!(format!("table_key_findings_{w}x{h}"), text(&a));
    }
    for (w, h) in SIZES {
        let mut a = app_with_key_findings(w, h);
        a.update(key('F'));
        insta::assert_snapshot!(format!("key_audit_{w}x{h}"), text(&a));
    }
    let mut a = app_with_key_findings(120, 40);
    a.update(key('F'));
    let shown: Vec<&str> = a
        .fleet
        .rows
        .iter()
        .map(|&i| a.fleet.records()[i].location.as_str())
        .collect();
    assert_eq!(
        shown,
        [
            "/etc/nginx/certs/shared.pem",
            "/srv/old/weak.crt",
            "k8s/shop/configmap/app-tls#tls.crt",
            "pkcs11:token=edge;object=edge-signing"
        ],
        "critical findings first, the protected key last, rows without findings left out"
    );
    // Enter opens the details of the certificate the finding is about.
    a.update(key('j'));
    a.update(code(KeyCode::Enter));
    let screen = text(&a);
    assert!(
        screen.contains("RSA key of 1024 bits (under 2048)"),
        "{screen}"
    );
    a.update(code(KeyCode::Esc));
    // F again is the table; `:keys` comes back to the audit.
    a.update(key('F'));
    assert_eq!(a.ui.view, certdeck::app::View::Table);
    a.update(key(':'));
    typed(&mut a, "keys");
    a.update(code(KeyCode::Enter));
    assert_eq!(a.ui.view, certdeck::app::View::Keys);

    // The quick filter keeps warnings and worse, in the table.
    let mut a = app_with_key_findings(80, 24);
    a.update(key('5'));
    insta::assert_snapshot!("only_keys_80x24", text(&a));
    assert_eq!(a.fleet.rows.len(), 3);
    let mut b = app_with_key_findings(80, 24);
    b.update(key(':'));
    typed(&mut b, "only keys");
    b.update(code(KeyCode::Enter));
    assert_eq!(a.fleet.rows, b.fleet.rows);
    // The text filter finds rows by finding code and key location too.
    b.update(key(':'));
    typed(&mut b, "only all");
    b.update(code(KeyCode::Enter));
    b.update(key('/'));
    typed(&mut b, "shared\\.key");
    b.update(code(KeyCode::Enter));
    assert_eq!(b.fleet.rows.len(), 1);

    // A fleet without findings says what the audit looks at.
    let mut a = App::new(NOW, Thresholds::default(), Keymap::default());
    a.update(AppEvent::Resize(80, 24));
    a.update(key('F'));
    insta::assert_snapshot!("key_audit_empty_80x24", text(&a));
}

/// Key reuse is judged across rows: when a second certificate with the same key arrives, the
/// first row (already on screen) shows the finding too, and the `keys` filter keeps both.
#[test]
fn a_key_reused_by_a_later_row_marks_the_earlier_row_too() {
    use certdeck::model::Record;
    use std::sync::Arc;
    let mut a = App::new(NOW, Thresholds::default(), Keymap::default());
    a.update(AppEvent::Resize(80, 24));
    let rec = |loc: &str, cn: &str| {
        let mut c =
            certdeck::testing::facts(cn, "CA", NOW - 86_400, NOW + 90 * 86_400, "RSA 2048", &[cn]);
        c.spki_sha256 = Some("ab".repeat(32));
        Record::new(SourceKind::FILE, loc.into(), NOW).with_cert(Arc::new(c))
    };
    a.update(observed(rec("/etc/tls/a.pem", "a.example")));
    a.update(key('5'));
    assert!(
        a.fleet.rows.is_empty(),
        "one certificate alone reuses nothing"
    );
    a.update(observed(rec("/etc/tls/b.pem", "b.example")));
    assert_eq!(a.fleet.rows.len(), 2, "both rows show the reuse");
    for &i in &a.fleet.rows {
        assert_eq!(a.fleet.facts(i).keys.code, "key_reused");
    }
}
