# @summary An `http://` or `https://` URL, such as `http://origin.example.org:8780`.
type Shoal::Httpurl = Pattern[/\Ahttps?:\/\/[^\s\/?#]+(\/\S*)?\z/]
