//! Header names: the ones the engine reads get a variant (compact forms map to them, case is
//! ignored); any other name is kept as written.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// Any other header, its name as written.
            Other(Box<str>),
        }

        impl HeaderName {
            /// Recognises a name in its long or compact form, in any case.
            pub fn parse(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other(name.into());
                }
                // One jump on length, first and last letter, then one comparison.
                #[allow(non_upper_case_globals)]
                mod keys {
                    $( pub const $variant: u32 = super::key($canon.as_bytes()); )*
                }
                match key(name.as_bytes()) {
                    $( keys::$variant if name.eq_ignore_ascii_case($canon) => HeaderName::$variant, )*
                    _ => HeaderName::Other(name.into()),
                }
            }

            /// The canonical spelling (the long form).
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(n) => n,
                }
            }
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", b'a';
    Allow => "Allow";
    AllowEvents => "Allow-Events", b'u';
    Authorization => "Authorization";
    CallId => "Call-ID", b'i';
    Contact => "Contact", b'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", b'e';
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    CSeq => "CSeq";
    Date => "Date";
    Event => "Event", b'o';
    Expires => "Expires";
    From => "From", b'f';
    Identity => "Identity", b'y';
    MaxForwards => "Max-Forwards";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    RejectContact => "Reject-Contact", b'j';
    Require => "Require";
    RequestDisposition => "Request-Disposition", b'd';
    RetryAfter => "Retry-After";
    Route => "Route";
    SessionExpires => "Session-Expires", b'x';
    Subject => "Subject", b's';
    Supported => "Supported", b'k';
    To => "To", b't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", b'v';
    WwwAuthenticate => "WWW-Authenticate";
}

/// A name's length, first and last octet (letters folded to lower case), for the match in
/// [`HeaderName::parse`].
const fn key(b: &[u8]) -> u32 {
    match b {
        [] => 0,
        [first, .., last] => {
            (b.len() as u32) << 16 | ((*first | 0x20) as u32) << 8 | (*last | 0x20) as u32
        }
        [only] => 1 << 16 | (*only | 0x20) as u32,
    }
}

impl HeaderName {
    /// Headers that may appear once only (RFC 3261 7.3.1: only comma-list headers may repeat).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::CallId
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::CSeq
                | HeaderName::Date
                | HeaderName::Expires
                | HeaderName::From
                | HeaderName::MaxForwards
                | HeaderName::MinExpires
                | HeaderName::MinSe
                | HeaderName::SessionExpires
                | HeaderName::To
                | HeaderName::ReferTo
                | HeaderName::ReferredBy
                | HeaderName::RetryAfter
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("V"), HeaderName::Via);
        assert_eq!(HeaderName::parse("MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse("L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(
            HeaderName::parse("NewFangledHeader"),
            HeaderName::Other("NewFangledHeader".into())
        );
        assert_eq!(HeaderName::parse("q"), HeaderName::Other("q".into()));
        assert_eq!(HeaderName::parse("Via2"), HeaderName::Other("Via2".into()));
        assert_eq!(
            HeaderName::parse("Call-IX"),
            HeaderName::Other("Call-IX".into())
        );
        assert_eq!(HeaderName::parse("CONTACT"), HeaderName::Contact);
        assert_eq!(
            HeaderName::parse("www-authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    }
}
