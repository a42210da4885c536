//! Every string a person reads on the web pages, in one table per language. A struct rather
//! than a map: a language that lacks a string does not compile. Pages get the table chosen by
//! `Accept-Language`; their scripts get the same table as JSON, so the browser never shows a
//! string the server could not translate. `{name}` placeholders are filled by [`fill`] here
//! and by the same rule in `app.js`.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Strings {
    pub lang: &'static str,
    pub tagline: &'static str,
    pub skip_to_content: &'static str,
    pub nav_send: &'static str,
    pub nav_shares: &'static str,
    pub nav_sign_out: &'static str,
    pub footer: &'static str,

    pub signin_title: &'static str,
    pub signin_lead: &'static str,
    pub signin_key_label: &'static str,
    pub signin_key_hint: &'static str,
    pub signin_button: &'static str,
    pub signin_failed: &'static str,
    pub signin_ended: &'static str,
    pub signin_receiving: &'static str,

    pub send_title: &'static str,
    pub drop_label: &'static str,
    pub drop_pick_files: &'static str,
    pub drop_pick_folder: &'static str,
    pub drop_or: &'static str,
    pub selected_many: &'static str,
    pub clear: &'static str,
    pub downloads_label: &'static str,
    pub expiry_label: &'static str,
    pub expiry_hour: &'static str,
    pub expiry_day: &'static str,
    pub expiry_week: &'static str,
    pub expiry_month: &'static str,
    pub expiry_custom: &'static str,
    pub custom_hours_label: &'static str,
    pub note_label: &'static str,
    pub encrypt_label: &'static str,
    pub send_password_label: &'static str,
    pub send_password_again_label: &'static str,
    pub send_password_hint: &'static str,
    pub send_password_off: &'static str,
    pub password_mismatch: &'static str,
    pub password_stretching: &'static str,
    pub resume_password: &'static str,
    pub resume_wrong_password: &'static str,
    pub result_password: &'static str,
    pub send_button: &'static str,
    pub cancel: &'static str,
    pub preparing: &'static str,
    pub progress: &'static str,
    pub finishing: &'static str,
    pub leave_warning: &'static str,
    pub cancelled: &'static str,
    pub failed: &'static str,
    pub retrying: &'static str,
    pub connection_lost: &'static str,
    pub signin_elsewhere: &'static str,
    pub no_etag: &'static str,
    pub resuming: &'static str,
    pub nothing_selected: &'static str,
    pub too_large: &'static str,
    pub result_title: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub share_button: &'static str,
    pub chat_line_label: &'static str,
    pub chat_line: &'static str,
    pub downloads_one: &'static str,
    pub downloads_many: &'static str,
    pub qr_label: &'static str,
    pub send_another: &'static str,

    pub landing_explain_one: &'static str,
    pub landing_explain_many: &'static str,
    pub landing_left_one: &'static str,
    pub landing_left_many: &'static str,
    pub landing_expires: &'static str,
    pub landing_note: &'static str,
    pub archive_of: &'static str,
    pub and_more: &'static str,
    pub unknown_size: &'static str,
    pub download_button: &'static str,
    pub download_started: &'static str,
    pub download_started_more: &'static str,
    pub decrypt_password_label: &'static str,
    pub decrypt_missing_key: &'static str,
    pub decrypt_request_upload: &'static str,
    pub decrypt_wrong: &'static str,
    pub decrypt_running: &'static str,
    pub decrypt_failed: &'static str,
    pub decrypt_retry: &'static str,
    pub download_resume: &'static str,
    pub resume: &'static str,
    pub preview_title: &'static str,
    pub preview_text: &'static str,

    pub used_title: &'static str,
    pub used_text: &'static str,
    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub revoked_title: &'static str,
    pub revoked_text: &'static str,
    pub unknown_title: &'static str,
    pub unknown_text: &'static str,
    pub not_ready_title: &'static str,
    pub not_ready_text: &'static str,
    pub ask_sender: &'static str,
    pub request_used_title: &'static str,
    pub request_used_text: &'static str,
    pub request_expired_title: &'static str,
    pub request_expired_text: &'static str,
    pub ask_requester: &'static str,
    pub page_missing_title: &'static str,
    pub page_missing_text: &'static str,
    pub link_expired_title: &'static str,
    pub link_expired_text: &'static str,
    pub trouble_title: &'static str,
    pub trouble_text: &'static str,
    pub try_again: &'static str,
    pub go_home: &'static str,
    pub reference: &'static str,

    pub request_title: &'static str,
    pub request_from: &'static str,
    pub request_someone: &'static str,
    pub request_limit: &'static str,
    pub request_fixed_name: &'static str,
    pub request_once: &'static str,
    pub request_pick: &'static str,
    pub request_button: &'static str,
    pub request_done: &'static str,

    pub shares_title: &'static str,
    pub shares_empty: &'static str,
    pub col_file: &'static str,
    pub col_state: &'static str,
    pub col_left: &'static str,
    pub col_expires: &'static str,
    pub col_previews: &'static str,
    pub col_attempts: &'static str,
    pub col_actions: &'static str,
    pub revoke: &'static str,
    pub revoke_confirm: &'static str,
    pub state_active: &'static str,
    pub state_uploading: &'static str,
    pub state_used: &'static str,
    pub state_expired: &'static str,
    pub state_revoked: &'static str,
    pub state_gone: &'static str,
    pub state_open: &'static str,
    pub state_fulfilled: &'static str,
    pub older: &'static str,
    pub requests_title: &'static str,
    pub requests_empty: &'static str,
    pub request_any_name: &'static str,
    pub new_request: &'static str,
    pub request_filename_label: &'static str,
    pub request_max_label: &'static str,
    pub request_open_label: &'static str,
    pub request_note_label: &'static str,
    pub request_from_label: &'static str,
    pub create_request: &'static str,
    pub request_link_ready: &'static str,
    pub hours: &'static str,
}

pub static ENGLISH: Strings = Strings {
    lang: "en",
    tagline: "Send a file once. The link works for one download, then the file is gone.",
    skip_to_content: "Skip to content",
    nav_send: "Send",
    nav_shares: "My shares",
    nav_sign_out: "Sign out",
    footer: "once · self-hosted one-time file sharing",

    signin_title: "Sign in",
    signin_lead: "Sign in with your API key to send files and manage your links.",
    signin_key_label: "API key",
    signin_key_hint: "It looks like KEYID.SECRET. The person who runs this server makes keys with “once keys create”.",
    signin_button: "Sign in",
    signin_failed: "That key was not accepted. Check it and try again.",
    signin_ended: "Your session has ended. Please sign in again.",
    signin_receiving: "Were you sent a link? Just open it: receiving needs no sign-in.",

    send_title: "Send files",
    drop_label: "Drop files or a folder here, or paste them",
    drop_pick_files: "Choose files",
    drop_pick_folder: "Choose a folder",
    drop_or: "or",
    selected_many: "{n} files, {size}, sent as one ZIP archive",
    clear: "Clear",
    downloads_label: "Downloads",
    expiry_label: "Expires after",
    expiry_hour: "1 hour",
    expiry_day: "1 day",
    expiry_week: "7 days",
    expiry_month: "30 days",
    expiry_custom: "Custom",
    custom_hours_label: "Hours until it expires",
    note_label: "Note for the recipient (optional)",
    encrypt_label: "Encrypt in this browser: only people with the whole link can open the file, not the server",
    send_password_label: "Password (optional)",
    send_password_again_label: "The password again",
    send_password_hint: "Part of the key: the recipient types it before downloading. Tell it another way than the link. Nobody can open the file without it, and it cannot be recovered.",
    send_password_off: "A password is part of the encryption key: tick the box above to set one.",
    password_mismatch: "The two passwords differ. Nothing was sent.",
    password_stretching: "Turning the password into a key…",
    resume_password: "An interrupted upload of this file had a password: type it again to continue it.",
    resume_wrong_password: "This is not the password of the interrupted upload of this file. Type the same password to continue it.",
    result_password: "This link needs the password you set: tell it to the recipient another way than the link.",
    send_button: "Upload and get the link",
    cancel: "Cancel",
    preparing: "Preparing the archive… {percent}",
    progress: "{percent} · {done} of {total} · {speed}/s · {left} left",
    finishing: "Finishing…",
    leave_warning: "An upload is running. Leaving the page stops it.",
    cancelled: "The upload was cancelled. Nothing was shared.",
    failed: "The upload failed: {reason}",
    retrying: "The connection broke; trying again…",
    connection_lost: "the connection to the server was lost",
    signin_elsewhere: "Sign in from this server’s own page.",
    no_etag: "the storage did not confirm a part (its answer had no ETag; the bucket’s CORS rules must expose it)",
    resuming: "Part of this upload is already on the server; continuing from there.",
    nothing_selected: "Choose at least one file first.",
    too_large: "This is larger than the server accepts ({size}).",
    result_title: "Your link is ready",
    copy: "Copy",
    copied: "Copied",
    share_button: "Share…",
    chat_line_label: "Ready to paste into a chat",
    chat_line: "{name} · {size} · {downloads} · expires {expiry}: {link}",
    downloads_one: "1 download",
    downloads_many: "{n} downloads",
    qr_label: "QR code of the link",
    send_another: "Send something else",

    landing_explain_one: "This link works once: downloading the file uses it up, for everyone.",
    landing_explain_many: "Each download uses the link once; after the last one it stops working.",
    landing_left_one: "1 download left",
    landing_left_many: "{n} downloads left",
    landing_expires: "Expires {time}",
    landing_note: "Note from the sender",
    archive_of: "A ZIP archive of {n} items ({size}):",
    and_more: "… and {n} more",
    unknown_size: "size unknown",
    download_button: "Download",
    download_started: "The download has started. This link is now used.",
    download_started_more: "The download has started. The link still works for {n} more downloads.",
    decrypt_password_label: "Password",
    decrypt_missing_key: "This link is incomplete: its key, the part after #, is missing. Ask the sender for the whole link.",
    decrypt_request_upload: "This file was uploaded end-to-end encrypted to an upload request. Only the private key kept where the request was made opens it: run once get with this link there. Nothing was downloaded.",
    decrypt_wrong: "The key in this link or the password is wrong. Nothing was downloaded, and the link still works.",
    decrypt_running: "Downloading and decrypting in this browser…",
    decrypt_failed: "The file did not decrypt: it was changed or cut short on the way. Nothing was saved.",
    decrypt_retry: "Download tries again until {time}.",
    download_resume: "If the download breaks, you can resume it until {time}:",
    resume: "Resume the download",
    preview_title: "A file was shared with you",
    preview_text: "Open this link in a browser to see the file. Previews do not use it up.",

    used_title: "This link has been used",
    used_text: "The file was downloaded already, so the link no longer works.",
    expired_title: "This link has expired",
    expired_text: "It was only valid for a limited time, and that time is over.",
    revoked_title: "This link was withdrawn",
    revoked_text: "The sender withdrew it, so the file is no longer available.",
    unknown_title: "This link does not exist",
    unknown_text: "Check that you opened the whole link. It may also have been removed a while ago.",
    not_ready_title: "This file is still on its way",
    not_ready_text: "The sender’s upload has not finished yet. Try again in a few minutes.",
    ask_sender: "If you still need the file, ask the sender for a new link.",
    request_used_title: "This upload link has been used",
    request_used_text: "It accepted one file already and takes no more.",
    request_expired_title: "This upload link has expired",
    request_expired_text: "It was open for a limited time, and that time is over.",
    ask_requester: "Ask the person who sent you this link for a new one.",
    page_missing_title: "Page not found",
    page_missing_text: "There is nothing at this address.",
    link_expired_title: "This download address has run out",
    link_expired_text: "Download addresses are short-lived. Open the original link again.",
    trouble_title: "Something went wrong",
    trouble_text: "The server could not do that just now.",
    try_again: "Please try again in a moment.",
    go_home: "Go to the start page",
    reference: "Reference for the server’s operator: {code}",

    request_title: "Send a file",
    request_from: "{from} asks you for a file",
    request_someone: "Someone asked you for a file",
    request_limit: "Up to {size} · open until {time}",
    request_fixed_name: "It will be saved as “{name}”.",
    request_once: "This page takes exactly one file. Once it has arrived, the link stops working.",
    request_pick: "Choose a file",
    request_button: "Upload",
    request_done: "Thank you: “{name}” has arrived. You can close this page.",

    shares_title: "My shares",
    shares_empty: "You have not shared anything yet.",
    col_file: "File",
    col_state: "State",
    col_left: "Downloads left",
    col_expires: "Expires",
    col_previews: "Previews",
    col_attempts: "Upload attempts",
    col_actions: "Actions",
    revoke: "Revoke",
    revoke_confirm: "Revoke this link? Nobody will be able to use it any more.",
    state_active: "active",
    state_uploading: "uploading",
    state_used: "used up",
    state_expired: "expired",
    state_revoked: "revoked",
    state_gone: "removed",
    state_open: "open",
    state_fulfilled: "file received",
    older: "Older shares",
    requests_title: "Upload requests",
    requests_empty: "No upload requests yet.",
    request_any_name: "a file of any name",
    new_request: "Ask someone for a file",
    request_filename_label: "Save the file as (optional)",
    request_max_label: "Largest file, in MiB",
    request_open_label: "Open for, in hours",
    request_note_label: "Note for the uploader (optional)",
    request_from_label: "Your name, shown to the uploader (optional)",
    create_request: "Create the upload link",
    request_link_ready: "Send this link to the person who has the file:",
    hours: "hours",
};

pub static GERMAN: Strings = Strings {
    lang: "de",
    tagline: "Eine Datei einmal senden. Der Link gilt für einen Download, danach ist die Datei weg.",
    skip_to_content: "Zum Inhalt springen",
    nav_send: "Senden",
    nav_shares: "Meine Freigaben",
    nav_sign_out: "Abmelden",
    footer: "once · selbst betriebene Einmal-Dateifreigabe",

    signin_title: "Anmelden",
    signin_lead: "Melden Sie sich mit Ihrem API-Schlüssel an, um Dateien zu senden und Ihre Links zu verwalten.",
    signin_key_label: "API-Schlüssel",
    signin_key_hint: "Er hat die Form KEYID.SECRET. Wer diesen Server betreibt, erstellt Schlüssel mit „once keys create“.",
    signin_button: "Anmelden",
    signin_failed: "Dieser Schlüssel wurde nicht angenommen. Bitte prüfen und erneut versuchen.",
    signin_ended: "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an.",
    signin_receiving: "Haben Sie einen Link bekommen? Öffnen Sie ihn einfach: Zum Empfangen braucht es keine Anmeldung.",

    send_title: "Dateien senden",
    drop_label: "Dateien oder einen Ordner hierher ziehen oder einfügen",
    drop_pick_files: "Dateien auswählen",
    drop_pick_folder: "Ordner auswählen",
    drop_or: "oder",
    selected_many: "{n} Dateien, {size}, gesendet als ein ZIP-Archiv",
    clear: "Leeren",
    downloads_label: "Downloads",
    expiry_label: "Läuft ab nach",
    expiry_hour: "1 Stunde",
    expiry_day: "1 Tag",
    expiry_week: "7 Tagen",
    expiry_month: "30 Tagen",
    expiry_custom: "Eigene Dauer",
    custom_hours_label: "Stunden bis zum Ablauf",
    note_label: "Nachricht an den Empfänger (optional)",
    encrypt_label: "In diesem Browser verschlüsseln: Nur wer den ganzen Link hat, kann die Datei öffnen, nicht der Server",
    send_password_label: "Passwort (optional)",
    send_password_again_label: "Das Passwort noch einmal",
    send_password_hint: "Teil des Schlüssels: Wer den Link bekommt, gibt es vor dem Download ein. Teilen Sie es auf anderem Weg mit als den Link. Ohne das Passwort lässt sich die Datei nicht öffnen, und es lässt sich nicht wiederherstellen.",
    send_password_off: "Ein Passwort ist Teil des Schlüssels: Setzen Sie oben das Häkchen, um eines zu vergeben.",
    password_mismatch: "Die beiden Passwörter stimmen nicht überein. Es wurde nichts gesendet.",
    password_stretching: "Der Schlüssel wird aus dem Passwort abgeleitet …",
    resume_password: "Ein unterbrochener Upload dieser Datei hatte ein Passwort: Geben Sie es erneut ein, um ihn fortzusetzen.",
    resume_wrong_password: "Das ist nicht das Passwort des unterbrochenen Uploads dieser Datei. Geben Sie dasselbe Passwort ein, um ihn fortzusetzen.",
    result_password: "Dieser Link braucht das vergebene Passwort: Teilen Sie es auf anderem Weg mit als den Link.",
    send_button: "Hochladen und Link erhalten",
    cancel: "Abbrechen",
    preparing: "Archiv wird vorbereitet … {percent}",
    progress: "{percent} · {done} von {total} · {speed}/s · noch {left}",
    finishing: "Wird abgeschlossen …",
    leave_warning: "Ein Upload läuft. Wenn Sie die Seite verlassen, bricht er ab.",
    cancelled: "Der Upload wurde abgebrochen. Es wurde nichts freigegeben.",
    failed: "Der Upload ist fehlgeschlagen: {reason}",
    retrying: "Die Verbindung ist abgebrochen; neuer Versuch …",
    connection_lost: "die Verbindung zum Server ist abgebrochen",
    signin_elsewhere: "Bitte melden Sie sich über die Seite dieses Servers an.",
    no_etag: "der Speicher hat einen Teil nicht bestätigt (seine Antwort hatte kein ETag; die CORS-Regeln des Buckets müssen es freigeben)",
    resuming: "Ein Teil dieses Uploads liegt schon auf dem Server; es geht dort weiter.",
    nothing_selected: "Bitte zuerst mindestens eine Datei auswählen.",
    too_large: "Das ist größer, als der Server annimmt ({size}).",
    result_title: "Ihr Link ist bereit",
    copy: "Kopieren",
    copied: "Kopiert",
    share_button: "Teilen …",
    chat_line_label: "Zum Einfügen in einen Chat",
    chat_line: "{name} · {size} · {downloads} · läuft ab {expiry}: {link}",
    downloads_one: "1 Download",
    downloads_many: "{n} Downloads",
    qr_label: "QR-Code des Links",
    send_another: "Etwas anderes senden",

    landing_explain_one: "Dieser Link gilt einmal: Wer die Datei herunterlädt, verbraucht ihn für alle.",
    landing_explain_many: "Jeder Download verbraucht den Link einmal; nach dem letzten gilt er nicht mehr.",
    landing_left_one: "1 Download übrig",
    landing_left_many: "{n} Downloads übrig",
    landing_expires: "Läuft ab {time}",
    landing_note: "Nachricht des Absenders",
    archive_of: "Ein ZIP-Archiv mit {n} Einträgen ({size}):",
    and_more: "… und {n} weitere",
    unknown_size: "Größe unbekannt",
    download_button: "Herunterladen",
    download_started: "Der Download hat begonnen. Dieser Link ist jetzt verbraucht.",
    download_started_more: "Der Download hat begonnen. Der Link gilt noch für {n} weitere Downloads.",
    decrypt_password_label: "Passwort",
    decrypt_missing_key: "Dieser Link ist unvollständig: Sein Schlüssel, der Teil nach #, fehlt. Bitte den Absender um den ganzen Link.",
    decrypt_request_upload: "Diese Datei wurde Ende-zu-Ende-verschlüsselt auf eine Upload-Anfrage hochgeladen. Nur der private Schlüssel, der dort liegt, wo die Anfrage gestellt wurde, öffnet sie: Dort once get mit diesem Link ausführen. Es wurde nichts heruntergeladen.",
    decrypt_wrong: "Der Schlüssel im Link oder das Passwort stimmt nicht. Es wurde nichts heruntergeladen, der Link funktioniert weiter.",
    decrypt_running: "Wird in diesem Browser heruntergeladen und entschlüsselt…",
    decrypt_failed: "Die Datei ließ sich nicht entschlüsseln: Sie wurde unterwegs verändert oder gekürzt. Es wurde nichts gespeichert.",
    decrypt_retry: "„Herunterladen“ versucht es bis {time} noch einmal.",
    download_resume: "Falls der Download abbricht, können Sie ihn bis {time} fortsetzen:",
    resume: "Download fortsetzen",
    preview_title: "Jemand hat Ihnen eine Datei geschickt",
    preview_text: "Öffnen Sie diesen Link in einem Browser, um die Datei zu sehen. Vorschauen verbrauchen ihn nicht.",

    used_title: "Dieser Link wurde schon verwendet",
    used_text: "Die Datei wurde bereits heruntergeladen, daher gilt der Link nicht mehr.",
    expired_title: "Dieser Link ist abgelaufen",
    expired_text: "Er galt nur für eine begrenzte Zeit, und die ist vorbei.",
    revoked_title: "Dieser Link wurde zurückgezogen",
    revoked_text: "Der Absender hat ihn zurückgezogen; die Datei ist nicht mehr verfügbar.",
    unknown_title: "Diesen Link gibt es nicht",
    unknown_text: "Prüfen Sie, ob Sie den ganzen Link geöffnet haben. Vielleicht wurde er auch vor einiger Zeit entfernt.",
    not_ready_title: "Diese Datei ist noch unterwegs",
    not_ready_text: "Der Upload des Absenders ist noch nicht fertig. Versuchen Sie es in ein paar Minuten erneut.",
    ask_sender: "Wenn Sie die Datei noch brauchen, bitten Sie den Absender um einen neuen Link.",
    request_used_title: "Dieser Upload-Link wurde schon verwendet",
    request_used_text: "Er hat bereits eine Datei angenommen und nimmt keine weitere an.",
    request_expired_title: "Dieser Upload-Link ist abgelaufen",
    request_expired_text: "Er war nur für eine begrenzte Zeit offen, und die ist vorbei.",
    ask_requester: "Bitten Sie die Person, die Ihnen den Link geschickt hat, um einen neuen.",
    page_missing_title: "Seite nicht gefunden",
    page_missing_text: "Unter dieser Adresse gibt es nichts.",
    link_expired_title: "Diese Download-Adresse ist abgelaufen",
    link_expired_text: "Download-Adressen gelten nur kurz. Öffnen Sie den ursprünglichen Link erneut.",
    trouble_title: "Etwas ist schiefgegangen",
    trouble_text: "Der Server konnte das gerade nicht erledigen.",
    try_again: "Bitte versuchen Sie es gleich noch einmal.",
    go_home: "Zur Startseite",
    reference: "Hinweis für den Betreiber des Servers: {code}",

    request_title: "Eine Datei senden",
    request_from: "{from} bittet Sie um eine Datei",
    request_someone: "Jemand bittet Sie um eine Datei",
    request_limit: "Bis {size} · offen bis {time}",
    request_fixed_name: "Sie wird als „{name}“ gespeichert.",
    request_once: "Diese Seite nimmt genau eine Datei an. Sobald sie angekommen ist, gilt der Link nicht mehr.",
    request_pick: "Datei auswählen",
    request_button: "Hochladen",
    request_done: "Danke: „{name}“ ist angekommen. Sie können diese Seite schließen.",

    shares_title: "Meine Freigaben",
    shares_empty: "Sie haben noch nichts freigegeben.",
    col_file: "Datei",
    col_state: "Zustand",
    col_left: "Downloads übrig",
    col_expires: "Läuft ab",
    col_previews: "Vorschauen",
    col_attempts: "Upload-Versuche",
    col_actions: "Aktionen",
    revoke: "Zurückziehen",
    revoke_confirm: "Diesen Link zurückziehen? Danach kann ihn niemand mehr verwenden.",
    state_active: "aktiv",
    state_uploading: "wird hochgeladen",
    state_used: "verbraucht",
    state_expired: "abgelaufen",
    state_revoked: "zurückgezogen",
    state_gone: "entfernt",
    state_open: "offen",
    state_fulfilled: "Datei erhalten",
    older: "Ältere Freigaben",
    requests_title: "Upload-Anfragen",
    requests_empty: "Noch keine Upload-Anfragen.",
    request_any_name: "eine Datei mit beliebigem Namen",
    new_request: "Jemanden um eine Datei bitten",
    request_filename_label: "Datei speichern als (optional)",
    request_max_label: "Größte Datei, in MiB",
    request_open_label: "Offen für, in Stunden",
    request_note_label: "Nachricht an die hochladende Person (optional)",
    request_from_label: "Ihr Name, wird beim Hochladen angezeigt (optional)",
    create_request: "Upload-Link erstellen",
    request_link_ready: "Schicken Sie diesen Link der Person, die die Datei hat:",
    hours: "Stunden",
};

/// The table for the first language in `Accept-Language` that we have, else English.
/// Quality values are honoured in order of appearance only when they are not zero.
pub fn pick(accept_language: &str) -> &'static Strings {
    let mut best: Option<(f32, &'static Strings)> = None;
    for item in accept_language.split(',') {
        let mut pieces = item.trim().split(';');
        let tag = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let quality = pieces
            .find_map(|piece| piece.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or_default();
        let table = match primary {
            "en" => &ENGLISH,
            "de" => &GERMAN,
            _ => continue,
        };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, table));
        }
    }
    best.map(|(_, table)| table).unwrap_or(&ENGLISH)
}

/// The strings `app.js` reads (`t('name')`). The page's JSON block carries only these: the rest
/// are in the HTML already, and the block counts against the page budget on every page. A test
/// keeps this list and the script in step.
const SCRIPT_STRINGS: &[&str] = &[
    "and_more",
    "archive_of",
    "cancelled",
    "chat_line",
    "connection_lost",
    "copied",
    "decrypt_failed",
    "decrypt_missing_key",
    "decrypt_request_upload",
    "decrypt_retry",
    "decrypt_running",
    "decrypt_wrong",
    "download_resume",
    "download_started",
    "download_started_more",
    "downloads_many",
    "downloads_one",
    "failed",
    "landing_note",
    "leave_warning",
    "no_etag",
    "nothing_selected",
    "password_mismatch",
    "password_stretching",
    "preparing",
    "progress",
    "request_done",
    "request_link_ready",
    "resume_password",
    "resume_wrong_password",
    "resuming",
    "retrying",
    "revoke_confirm",
    "selected_many",
    "send_password_hint",
    "send_password_off",
    "state_revoked",
    "too_large",
];

/// The strings of `table` the page script reads, for the page's JSON block.
pub fn for_script(table: &Strings) -> serde_json::Map<String, serde_json::Value> {
    let mut strings = match serde_json::to_value(table) {
        Ok(serde_json::Value::Object(strings)) => strings,
        _ => serde_json::Map::new(),
    };
    strings.retain(|name, _| SCRIPT_STRINGS.contains(&name.as_str()));
    strings
}

/// Replaces each `{name}` in `template` with its value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_accept_language() {
        assert_eq!(pick("").lang, "en");
        assert_eq!(pick("de-DE,de;q=0.9,en;q=0.8").lang, "de");
        assert_eq!(pick("fr-FR, en;q=0.5, de;q=0.7").lang, "de");
        assert_eq!(pick("fr, de;q=0").lang, "en");
        assert_eq!(pick("EN-gb").lang, "en");
    }

    #[test]
    fn the_script_gets_exactly_the_strings_it_reads() {
        let script = include_str!("assets/app.js");
        let mut read: Vec<&str> = script
            .match_indices("t('")
            .filter(|&(at, _)| {
                // `t(` itself, not the end of another name such as `element(`.
                !script[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || "_$.".contains(c))
            })
            .filter_map(|(at, _)| script[at + 3..].split_once('\'').map(|(name, _)| name))
            .collect();
        read.sort_unstable();
        read.dedup();
        let mut listed = SCRIPT_STRINGS.to_vec();
        listed.sort_unstable();
        assert_eq!(
            listed, read,
            "SCRIPT_STRINGS and the t('…') of app.js differ"
        );
        for table in [&ENGLISH, &GERMAN] {
            let given = for_script(table);
            for name in SCRIPT_STRINGS {
                assert!(
                    given.contains_key(*name),
                    "{}: no string {name}",
                    table.lang
                );
            }
        }
    }

    #[test]
    fn placeholders_are_filled_and_every_language_has_the_same_ones() {
        assert_eq!(
            fill("{n} of {total}", &[("n", "1"), ("total", "2")]),
            "1 of 2"
        );
        let english = serde_json::to_value(&ENGLISH).unwrap();
        let german = serde_json::to_value(&GERMAN).unwrap();
        let placeholders = |text: &str| {
            let mut names: Vec<String> = text
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
                .collect();
            names.sort();
            names
        };
        for (name, text) in english.as_object().unwrap() {
            let other = german[name].as_str().unwrap();
            assert_eq!(
                placeholders(text.as_str().unwrap()),
                placeholders(other),
                "{name}"
            );
        }
    }
}
