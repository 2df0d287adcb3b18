// Timing harness for one round stage: the stage's 1800 inputs come from an internal shift
// register fed by one pin and its outputs are folded into one pin, so that place and route
// measures the register-to-register round path and not I/O.
`default_nettype none
module stage_top (
    input  wire clk,
    input  wire din,
    output reg  dout
);
    reg [769:0] sh;
    always @(posedge clk) sh <= {sh[768:0], din};
    wire [255:0] st;
    wire v, m;
    sha256_pipe #(.META_W(1), .ROUNDS(1)) stage (
        .clk(clk), .rst(1'b0), .ce(1'b1), .in_valid(sh[0]), .in_state(sh[256:1]),
        .in_block(sh[768:257]), .in_meta(sh[769]), .out_valid(v), .out_state(st), .out_meta(m));
    always @(posedge clk) dout <= ^st ^ v ^ m;
endmodule
`default_nettype wire
