//! The messages of the parse benchmark (`parse.rs`) and the profiling loop
//! (`examples/parse_loop.rs`): a typical INVITE with SDP and a REGISTER with credentials.

pub const INVITE: &[u8] = b"INVITE sip:12345@hotline.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:12345@hotline.example.com>\r\n\
From: \"Citizen\" <sip:13812345678@carrier.example.net>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@192.0.2.10\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:13812345678@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: timer, replaces\r\n\
User-Agent: CarrierGW/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 214\r\n\
\r\n\
v=0\r\n\
o=gw 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

pub const REGISTER: &[u8] = b"REGISTER sip:hotline.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.21:5060;rport;branch=z9hG4bKnashds7\r\n\
Max-Forwards: 70\r\n\
From: <sip:agent1001@hotline.example.com>;tag=a73kszlfl\r\n\
To: <sip:agent1001@hotline.example.com>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@10.0.0.21\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:agent1001@10.0.0.21:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"agent1001\", realm=\"hotline\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", uri=\"sip:hotline.example.com\", response=\"dfe56131d1958046689d83306477ecc\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n\
User-Agent: baresip\r\n\
Content-Length: 0\r\n\
\r\n";
