fn main() {
    println!("dockgate skeleton");
}
