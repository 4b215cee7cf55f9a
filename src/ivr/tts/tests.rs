use super::*;

fn tone(freq: f64, rate: u32, ms: u32) -> Vec<i16> {
    (0..rate * ms / 1000)
        .map(|n| {
            (10_000.0 * (2.0 * std::f64::consts::PI * freq * f64::from(n) / f64::from(rate)).sin())
                as i16
        })
        .collect()
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
}

fn crossings(s: &[i16]) -> usize {
    s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

#[test]
fn speech_band_survives_resampling_to_8_khz() {
    let input = tone(1000.0, 22050, 1000);
    let out = resample(&input, 22050, 8000);
    assert_eq!(out.len(), 8000);
    // Away from the edges, the level and the pitch are kept.
    let mid = &out[400..7600];
    let ratio = rms(mid) / rms(&input[1100..20900]);
    assert!((0.95..1.05).contains(&ratio), "level ratio {ratio}");
    let c = crossings(mid); // 1 kHz: two crossings per ms over 900 ms
    assert!((1795..=1805).contains(&c), "{c} crossings");
}

#[test]
fn tones_above_the_telephone_band_do_not_fold_back() {
    let input = tone(6000.0, 22050, 500);
    let out = resample(&input, 22050, 8000);
    let ratio = rms(&out[200..3800]) / rms(&input);
    assert!(ratio < 0.03, "6 kHz leaks through at {ratio}");
}

#[test]
fn espeak_speaks_mandarin_once_and_the_player_can_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let tts = Tts::espeak(dir.path());
    let path = tts.speak("您好，这里是12345政务服务便民热线").unwrap();
    let spec = hound::WavReader::open(&path).unwrap().spec();
    assert_eq!((spec.sample_rate, spec.channels), (8000, 1));
    let prompt = hotline_sip::media::player::Prompt::load(&path).unwrap();
    assert!(prompt.frames() > 50, "{} frames of 20 ms", prompt.frames());
    // The second time it comes from the cache: the same file, not written again.
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    assert_eq!(
        tts.speak("您好，这里是12345政务服务便民热线").unwrap(),
        path
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        written
    );
    // Another text is another file; only finished files stay in the cache.
    assert_ne!(tts.speak("-再见").unwrap(), path);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".wav") && !n.ends_with(".raw.wav"))
    );
}

#[test]
fn a_missing_or_failing_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Tts {
        command: vec!["no-such-tts-program".into(), "{out}".into()],
        cache_dir: dir.path().to_path_buf(),
    };
    let e = missing.speak("x").unwrap_err().to_string();
    assert!(
        e.contains("no-such-tts-program") && e.contains("not found"),
        "{e}"
    );
    let failing = Tts {
        command: vec!["sh".into(), "-c".into(), "echo no voice >&2; exit 3".into()],
        cache_dir: dir.path().to_path_buf(),
    };
    let e = failing.speak("x").unwrap_err().to_string();
    assert!(e.contains("no voice"), "{e}");
}

/// Two nodes sharing a cache synthesise the same text at once (parallel tests, a restart
/// beside a running node): each writes its own scratch files, both get the whole prompt, and
/// the cache ends with one finished file. Before, both wrote `{key}.raw.wav` and one read the
/// other's half-written file ("Failed to read enough bytes").
#[test]
fn the_same_text_synthesised_at_once_by_two_engines_is_whole_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("voice.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&source, spec).unwrap();
    for s in tone(440.0, 8000, 2000) {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let cache = dir.path().join("cache");
    // A slow program that writes its output in two halves, a moment apart.
    let script = format!(
        "head -c 16000 {src} > {{out}}; sleep 0.3; tail -c +16001 {src} >> {{out}}",
        src = source.display()
    );
    let tts = Tts {
        command: vec!["sh".into(), "-c".into(), script],
        cache_dir: cache.clone(),
    };
    let results: Vec<_> = std::thread::scope(|s| {
        // The second starts while the first is half-way through its output.
        let a = s.spawn(|| tts.speak("同一句话"));
        std::thread::sleep(std::time::Duration::from_millis(150));
        let b = s.spawn(|| tts.speak("同一句话"));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    for r in results {
        let path = r.unwrap();
        let samples = read_8k(&path).unwrap();
        assert_eq!(samples.len(), 16_000, "the whole two seconds");
    }
    let names: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        1,
        "one finished file, no scratch left: {names:?}"
    );
}
