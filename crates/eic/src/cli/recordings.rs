//! `eic recordings list|show|export`: the console's and the serial
//! gateway's session recordings (asciicast v2, `[recordings]` dir).

use std::io::Write;

use clap::Subcommand;

use super::ServerFiles;
use eic_recording::RecordingId;

#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// Every recording, newest first: who, which instance, as whom, when, how much.
    List {
        #[command(flatten)]
        server: ServerFiles,
        /// One JSON array of the recordings' metadata.
        #[arg(long)]
        json: bool,
    },
    /// One recording's metadata, as JSON.
    Show {
        #[command(flatten)]
        server: ServerFiles,
        id: String,
    },
    /// One recording as asciicast v2 on stdout (asciinema play - plays it).
    Export {
        #[command(flatten)]
        server: ServerFiles,
        id: String,
    },
}

fn parse_id(text: &str) -> anyhow::Result<RecordingId> {
    RecordingId::parse(text).map_err(|_| {
        anyhow::anyhow!("'{text}' is not a recording id (32 hex digits, from eic recordings list)")
    })
}

pub fn run(command: RecordingsCommand) -> anyhow::Result<()> {
    match command {
        RecordingsCommand::List { server, json } => {
            let (config, _) = server.open()?;
            let all = eic_recording::list(&config.recordings_dir())?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &all)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(out, "ID                                STARTED               PRINCIPAL  INSTANCE  AS  BYTES  ENDED")?;
            for meta in &all {
                writeln!(
                    out,
                    "{}  {}  {}  {}  {}  {}  {}",
                    meta.id,
                    meta.started_rfc3339(),
                    meta.principal_arn,
                    meta.instance_id,
                    meta.target().as_deref().unwrap_or("-"),
                    meta.bytes_out,
                    meta.ended_rfc3339()
                        .as_deref()
                        .unwrap_or("(running or interrupted)")
                )?;
            }
            Ok(())
        }
        RecordingsCommand::Show { server, id } => {
            let id = parse_id(&id)?;
            let (config, _) = server.open()?;
            let meta = eic_recording::metadata(&config.recordings_dir(), &id)?;
            println!("{}", serde_json::to_string_pretty(&meta)?);
            Ok(())
        }
        RecordingsCommand::Export { server, id } => {
            let id = parse_id(&id)?;
            let (config, _) = server.open()?;
            let path = eic_recording::cast_path(&config.recordings_dir(), &id);
            let mut file = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("no recording {id} ({}: {e})", path.display()))?;
            std::io::copy(&mut file, &mut std::io::stdout().lock())?;
            Ok(())
        }
    }
}
