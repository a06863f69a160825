//! Who is signed in, as a rendered page knows it: the server fills it in from the request's
//! principal, the browser reads it back from the page (`ui::session`).

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionInfo {
    /// Accounts are on (sign-in, sign-out, account pages); off in single-user mode.
    pub accounts: bool,
    /// The signed-in user's name.
    pub name: Option<String>,
    pub admin: bool,
    /// The session's CSRF token, for forms posted without JavaScript.
    pub csrf_token: Option<String>,
    /// The theme chosen in this browser (`light` or `dark`); `None` follows the system.
    pub theme: Option<String>,
}

/// The cookie the chosen theme is kept in (so the server renders it, with no flash).
pub const THEME_COOKIE: &str = "stoa_theme";

/// A theme name worth keeping.
pub fn valid_theme(theme: &str) -> Option<String> {
    matches!(theme, "light" | "dark").then(|| theme.to_owned())
}
