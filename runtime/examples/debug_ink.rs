fn main() {
    let path = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let g = runtime::preprocess::decode(&bytes).unwrap();
    g.save("/tmp/d_grey.png").unwrap();
    match runtime::preprocess::ink::find(&g) {
        Some(ink) => {
            ink.ink.save("/tmp/d_ink.png").unwrap();
            println!("threshold {} bbox {:?}", ink.threshold, ink.bbox);
        }
        None => println!("none"),
    }
}
