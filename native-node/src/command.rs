//! What a line typed by the user asks for.
//!
//! Commands start with `/`. A line without a slash is a message to the
//! current chat; a line starting with `//` is a message that starts with
//! one slash. Chat names never contain spaces, so `/send_chat <chat> <text>`
//! is unambiguous, and the text keeps its inner spacing exactly.

/// Messages shown by `/history` when no count is given.
pub const DEFAULT_HISTORY: usize = 20;
/// Most messages `/history` shows at once.
pub const MAX_HISTORY: usize = 10_000;

/// Help text for humans.
pub const HELP: &str = "\
Commands:
  /create_chat <Chat Name>           create a chat; prints its Chat ID to share
  /join_chat <Chat ID>               join a chat with the Chat ID someone shared
  /send_chat <Chat Name> <Message>   send a message to a chat
  <Message>                          (no slash) send to the current chat
  /peers [chat]                      members with status and last seen
  /chats                             your chats with their Chat IDs
  /history [chat] [n]                the last n messages of a chat (default 20)
  /invite <chat>                     show the chat's Chat ID again
  /leave <chat>                      leave a chat and erase its messages and Chat ID here (asks first)
  /help                              this help
  /quit                              leave p2pchat (your chats stay; they come back next time)
A chat is named by its name or by the start of its Chat ID.
Start a message with // to send a line that begins with /.";

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing typed.
    Empty,
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// `/create_chat <name>`.
    CreateChat(String),
    /// `/join_chat <Chat ID>`.
    JoinChat(String),
    /// `/send_chat <chat> <text>`.
    SendChat { chat: String, text: String },
    /// A line without a command: text for the current chat.
    Say(String),
    /// `/peers [chat]`.
    Peers(Option<String>),
    /// `/chats`.
    Chats,
    /// `/history [chat] [n]`.
    History { chat: Option<String>, count: usize },
    /// `/invite <chat>`.
    Invite(Option<String>),
    /// `/leave <chat>`.
    Leave(String),
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a command this node knows.
    #[error("unknown command {0}; type /help for the list")]
    Unknown(String),
    /// A known command used wrongly.
    #[error("usage: {0}")]
    Usage(&'static str),
}

impl Command {
    /// Parses one line.
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(Command::Empty);
        }
        if let Some(text) = line.strip_prefix("//") {
            return Ok(Command::Say(format!("/{text}")));
        }
        if !line.trim_start().starts_with('/') {
            return Ok(Command::Say(line.to_owned()));
        }
        let line = line.trim_start();
        let (word, rest) = split_word(line);
        let args: Vec<&str> = rest.split_whitespace().collect();
        match word {
            "/help" => Ok(Command::Help),
            "/quit" | "/exit" => Ok(Command::Quit),
            "/create_chat" => match args.as_slice() {
                [name] => Ok(Command::CreateChat((*name).to_owned())),
                [] => Err(ParseError::Usage("/create_chat <Chat Name>")),
                _ => Err(ParseError::Usage(
                    "/create_chat <Chat Name> (a chat name has no spaces; try dashes)",
                )),
            },
            "/join_chat" => match args.as_slice() {
                [id] => Ok(Command::JoinChat((*id).to_owned())),
                _ => Err(ParseError::Usage("/join_chat <Chat ID>")),
            },
            "/send_chat" => {
                let (chat, text) = split_word(rest.trim_start());
                if chat.is_empty() || text.trim().is_empty() {
                    return Err(ParseError::Usage("/send_chat <Chat Name> <Message>"));
                }
                Ok(Command::SendChat {
                    chat: chat.to_owned(),
                    text: text.to_owned(),
                })
            }
            "/peers" => match args.as_slice() {
                [] => Ok(Command::Peers(None)),
                [chat] => Ok(Command::Peers(Some((*chat).to_owned()))),
                _ => Err(ParseError::Usage("/peers [chat]")),
            },
            "/chats" => match args.as_slice() {
                [] => Ok(Command::Chats),
                _ => Err(ParseError::Usage("/chats")),
            },
            "/history" => parse_history(&args),
            "/invite" => match args.as_slice() {
                [] => Ok(Command::Invite(None)),
                [chat] => Ok(Command::Invite(Some((*chat).to_owned()))),
                _ => Err(ParseError::Usage("/invite <chat>")),
            },
            "/leave" => match args.as_slice() {
                [chat] => Ok(Command::Leave((*chat).to_owned())),
                _ => Err(ParseError::Usage("/leave <chat>")),
            },
            other => Err(ParseError::Unknown(other.to_owned())),
        }
    }
}

const HISTORY_USAGE: &str = "/history [chat] [n] (n from 1 to 10000)";

fn parse_history(args: &[&str]) -> Result<Command, ParseError> {
    let count = |s: &str| match s.parse::<usize>() {
        Ok(n) if (1..=MAX_HISTORY).contains(&n) => Ok(n),
        _ => Err(ParseError::Usage(HISTORY_USAGE)),
    };
    match args {
        [] => Ok(Command::History {
            chat: None,
            count: DEFAULT_HISTORY,
        }),
        [one] => match one.parse::<usize>() {
            // A lone number is a count for the current chat, unless it is
            // out of range (then it can only be a chat's name).
            Ok(n) if (1..=MAX_HISTORY).contains(&n) => Ok(Command::History {
                chat: None,
                count: n,
            }),
            _ => Ok(Command::History {
                chat: Some((*one).to_owned()),
                count: DEFAULT_HISTORY,
            }),
        },
        [chat, n] => Ok(Command::History {
            chat: Some((*chat).to_owned()),
            count: count(n)?,
        }),
        _ => Err(ParseError::Usage(HISTORY_USAGE)),
    }
}

/// The first word and everything after the whitespace that follows it.
fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => {
            let rest = &s[i..];
            let rest = rest
                .char_indices()
                .find(|(_, c)| !c.is_whitespace())
                .map_or("", |(j, _)| &rest[j..]);
            (&s[..i], rest)
        }
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        Command::parse(line).unwrap()
    }

    #[test]
    fn parses_the_seed_commands() {
        assert_eq!(ok("/help"), Command::Help);
        assert_eq!(ok("  /quit  "), Command::Quit);
        assert_eq!(ok(""), Command::Empty);
        assert_eq!(ok("   "), Command::Empty);
        assert_eq!(
            ok("/create_chat general"),
            Command::CreateChat("general".into())
        );
        assert_eq!(
            ok("/join_chat p2pchat:abc"),
            Command::JoinChat("p2pchat:abc".into())
        );
        assert_eq!(
            ok("/send_chat general hello   there\tfriend "),
            Command::SendChat {
                chat: "general".into(),
                text: "hello   there\tfriend ".into()
            }
        );
        assert_eq!(ok("/peers"), Command::Peers(None));
        assert_eq!(ok("/peers general"), Command::Peers(Some("general".into())));
    }

    #[test]
    fn parses_the_added_commands() {
        assert_eq!(ok("/chats"), Command::Chats);
        assert_eq!(
            ok("/history"),
            Command::History {
                chat: None,
                count: DEFAULT_HISTORY
            }
        );
        assert_eq!(
            ok("/history 5"),
            Command::History {
                chat: None,
                count: 5
            }
        );
        assert_eq!(
            ok("/history general 50"),
            Command::History {
                chat: Some("general".into()),
                count: 50
            }
        );
        assert_eq!(
            ok("/history general"),
            Command::History {
                chat: Some("general".into()),
                count: DEFAULT_HISTORY
            }
        );
        assert_eq!(
            ok("/invite general"),
            Command::Invite(Some("general".into()))
        );
        assert_eq!(ok("/leave general"), Command::Leave("general".into()));
    }

    #[test]
    fn plain_lines_go_to_the_current_chat() {
        assert_eq!(ok("hello /there"), Command::Say("hello /there".into()));
        assert_eq!(ok("//shrug"), Command::Say("/shrug".into()));
        assert_eq!(ok("  indented"), Command::Say("  indented".into()));
    }

    #[test]
    fn misuse_gives_usage_errors() {
        let err = |l: &str| Command::parse(l).unwrap_err().to_string();
        assert!(err("/nope x").contains("unknown command /nope"));
        assert!(err("/HELP").contains("unknown command"));
        assert!(err("/create_chat").contains("usage: /create_chat"));
        assert!(err("/create_chat my chat").contains("no spaces"));
        assert!(err("/join_chat").contains("usage: /join_chat"));
        assert!(err("/join_chat a b").contains("usage: /join_chat"));
        assert!(err("/send_chat general").contains("usage: /send_chat"));
        assert!(err("/send_chat general    ").contains("usage: /send_chat"));
        assert!(err("/send_chat").contains("usage: /send_chat"));
        assert!(err("/history general 0").contains("usage: /history"));
        assert!(err("/history general x").contains("usage: /history"));
        assert!(err("/history a b c").contains("usage: /history"));
        assert!(err("/leave").contains("usage: /leave"));
        assert!(err("/chats x").contains("usage: /chats"));
    }
}
